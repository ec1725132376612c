"""Incremental segment refresh: only members whose time-based profile fields can have
changed are evaluated again, found by the partial index on `segment_due.due_at`.

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
(`refresh` below, or `SegmentRefreshRequest(full=True)`), which also rewrites every
member's due moment.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import asyncpg
from journeyman.event_store import PostgresEventStore

from .membership import (
    RefreshResult,
    Segments,
    _mark,
    apply_profiles,
    profile_of,
    segment_list,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from journeyman.engine.profile_model import MemberProfile
    from journeyman.engine.profiles.fold import ProfileRow
    from journeyman.engine.settings import Settings

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


async def refresh_due(
    store: PostgresEventStore,
    segments: Segments,
    *,
    settings: Settings,
    now: dt.datetime,
    page_size: int = 500,
    on_page: Callable[[RefreshResult], Awaitable[None] | None] | None = None,
) -> RefreshResult:
    """Evaluate the segments of members due at `now` (soonest first, a page per
    transaction, under the profile projector's lock), and move their due moments on.
    `examined` counts the profile rows read."""
    from journeyman.engine.profiles.fold import ProfileRow, scores
    from journeyman.engine.profiles.names import LOCK as PROFILES_LOCK
    from journeyman.engine.profiles.names import NAME as PROFILES

    chosen = segment_list(segments)
    result = RefreshResult()
    if not chosen:
        return result
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    while True:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PROFILES_LOCK)
            if await _mark(conn, PROFILES) < await _mark(conn):
                result.behind = True
                return result
            records = await conn.fetch(
                "SELECT p.* FROM segment_due d JOIN member_profiles p USING (member_id) "
                "WHERE d.due_at IS NOT NULL AND d.due_at <= $1 "
                "ORDER BY d.due_at, d.member_id LIMIT $2",
                now,
                page_size,
            )
            rows = [ProfileRow.from_record(r) for r in records]
            profiles: dict[str, MemberProfile | None] = {}
            for row in rows:
                scores(row, now, settings)
                profiles[row.member_id] = profile_of(row)
            changes = await apply_profiles(conn, store, chosen, profiles, now=now)
            await track(conn, rows, now, settings)
        result.pages += 1
        result.examined += len(records)
        result.changes.add(changes)
        if on_page is not None:
            outcome = on_page(result)
            if outcome is not None:
                await outcome
        if len(records) < page_size:
            return result


async def refresh(
    store: PostgresEventStore,
    segments: Segments,
    *,
    settings: Settings,
    now: dt.datetime,
    page_size: int = 500,
    after: str | None = None,
    on_page: Callable[[RefreshResult], Awaitable[None] | None] | None = None,
) -> RefreshResult:
    """Evaluate every member's segments as of `now`, a page of profiles per transaction, in
    member id order (after `after`, to resume). Each page runs under the profile projector's
    lock, so it never interleaves with a batch being folded. `on_page` is called after each
    committed page (the scan activity heartbeats there)."""
    from journeyman.engine.profiles.fold import ProfileRow, scores
    from journeyman.engine.profiles.names import LOCK as PROFILES_LOCK
    from journeyman.engine.profiles.names import NAME as PROFILES

    chosen = segment_list(segments)
    result = RefreshResult(cursor=after)
    if not chosen:
        return result
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    while True:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PROFILES_LOCK)
            if await _mark(conn, PROFILES) < await _mark(conn):
                result.behind = True
                log.warning(
                    "segment refresh skipped: the profile projection is replaying the store"
                )
                return result
            records = await conn.fetch(
                "SELECT * FROM member_profiles WHERE member_id > $1 ORDER BY member_id LIMIT $2",
                result.cursor or "",
                page_size,
            )
            profiles: dict[str, MemberProfile | None] = {}
            for record in records:
                row = ProfileRow.from_record(record)
                scores(row, now, settings)
                profiles[row.member_id] = profile_of(row)
            changes = await apply_profiles(conn, store, chosen, profiles, now=now)
            await track(conn, [ProfileRow.from_record(r) for r in records], now, settings)
        result.pages += 1
        result.examined += len(records)
        result.changes.add(changes)
        if records:
            result.cursor = records[-1]["member_id"]
        if on_page is not None:
            outcome = on_page(result)
            if outcome is not None:
                await outcome
        if len(records) < page_size:
            return result
