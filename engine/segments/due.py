"""Due moments for segments: when a member's time-based profile fields can next change, so
that an incremental refresh (`journeyman.engine.profiles.segment_refresh`) evaluates only
those members, found by the partial index on `segment_due.due_at`.

A segment is a pure test of the profile (`Segment.when`), and a profile changes only when
an event is folded into it (the projector evaluates segments then) or when a field computed
from the clock crosses a threshold: the recency score (days since the last order against
`rfm_recency_days`) and the lifecycle stage (days since first seen and since the last
activity against the `lifecycle_*_days` settings). So each member's `segment_due.due_at` is
the next such crossing (`next_change`), written by the profile projector in the transaction
of the profile write and by each incremental pass for the members it evaluated. Members with
nothing ahead (no activity, churned and without orders past the last recency band) have no
`due_at` and are never read.

A change of those settings, or of the registered segments, calls for one full refresh
(`segment_refresh.refresh`, or `SegmentRefreshRequest(full=True)`), which also rewrites every
member's due moment.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import asyncpg

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from journeyman.engine.core.settings import Settings
    from journeyman.engine.profiles.fold import ProfileRow

_DAY = dt.timedelta(days=1)


def next_change(row: ProfileRow, now: dt.datetime, s: Settings) -> dt.datetime | None:
    """The first moment after `now` at which `journeyman.engine.profiles.fold.scores` gives this
    row a different recency score or lifecycle stage, or None if it never will (without events)."""
    if row.merged_into is not None or row.erased:
        return None
    moments: list[dt.datetime] = []
    if row.order_count > 0 and row.last_order_at is not None:
        moments += [row.last_order_at + d * _DAY for d in s.rfm_recency_days[:4]]
    last = row.last_activity_at or row.first_seen_at
    if last is not None:
        first = row.first_seen_at or last
        moments.append(first + s.lifecycle_new_days * _DAY)
        moments += [
            last + d * _DAY
            for d in (s.lifecycle_at_risk_days, s.lifecycle_lapsed_days, s.lifecycle_churned_days)
        ]
    ahead = [m for m in moments if m > now]
    return min(ahead) if ahead else None


async def track(
    conn: asyncpg.Connection, rows: Iterable[ProfileRow], now: dt.datetime, s: Settings
) -> None:
    """Write the due moments of `rows` (as folded at `now`), in the caller's transaction."""
    pairs = sorted((r.member_id, next_change(r, now, s)) for r in rows)
    if not pairs:
        return
    await conn.execute(
        "INSERT INTO segment_due (member_id, due_at) "
        "SELECT * FROM unnest($1::text[], $2::timestamptz[]) "
        "ON CONFLICT (member_id) DO UPDATE SET due_at = excluded.due_at "
        "WHERE segment_due.due_at IS DISTINCT FROM excluded.due_at",
        [m for m, _ in pairs],
        [d for _, d in pairs],
    )
