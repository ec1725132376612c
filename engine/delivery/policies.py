"""Delivery policies: consent, suppression, quiet hours and the frequency cap.

Pure functions decide (`quiet_hours_end`, `consent_allows`); `FrequencyCap` keeps the cap's
ledger in PostgreSQL, safe under concurrency: every reservation for a member takes the same
transaction-scoped advisory lock before it counts and inserts, so 200 journeys sending to
one member at the same moment are served one at a time and exactly N get through.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import asyncpg
from journeyman.engine.contracts.profile import MemberProfile


@lru_cache(maxsize=512)
def zone(name: str | None, default: str = "UTC") -> zoneinfo.ZoneInfo:
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            return zoneinfo.ZoneInfo(candidate)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return zoneinfo.ZoneInfo("UTC")


def _wall(day: dt.date, at: dt.time, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant the member's clock shows `at` on `day`. A wall time that does not exist
    (skipped by a spring-forward change) is read with the offset before the change, i.e. it
    lands just after the gap; a repeated one (fall back) means its first occurrence."""
    return dt.datetime.combine(day, at, tzinfo=tz).astimezone(dt.UTC)


def quiet_hours_end(
    now: dt.datetime, tz: zoneinfo.ZoneInfo, start: dt.time | None, end: dt.time
) -> dt.datetime | None:
    """When quiet hours end if `now` is inside them (in UTC), else None.

    Quiet hours run from `start` to `end` on the member's wall clock and may span midnight
    (21:00-08:00). The answer is computed on local dates and converted to UTC, so it is
    right across daylight-saving changes: the night the clocks go forward is an hour shorter.
    """
    if start is None or start == end:
        return None
    local = now.astimezone(tz)
    today = local.date()
    for day in (today - dt.timedelta(days=1), today):
        begin = _wall(day, start, tz)
        end_day = day if start < end else day + dt.timedelta(days=1)
        finish = _wall(end_day, end, tz)
        if begin <= now < finish:
            return finish
    return None


def consent_allows(
    profile: MemberProfile | None,
    channel: str,
    purpose: str,
    opt_in_channels: list[str],
) -> bool:
    """Consent for `channel` and `purpose` ('<channel>:<purpose>' in the profile).

    An explicit answer wins. Without one, transactional messages are allowed and marketing
    messages are allowed except on opt-in channels (SMS by default)."""
    consent: Mapping[str, bool] = profile.consent if profile is not None else {}
    explicit = consent.get(f"{channel}:{purpose}")
    if explicit is not None:
        return explicit
    if purpose == "transactional":
        return True
    return channel not in opt_in_channels


@dataclass(frozen=True)
class CapDecision:
    allowed: bool
    counted: int
    retry_at: dt.datetime | None = None


class FrequencyCap:
    """At most `limit` marketing messages per member per rolling `window`."""

    def __init__(self, pool: asyncpg.Pool, limit: int | None, window: dt.timedelta) -> None:
        self.pool = pool
        self.limit = limit
        self.window = window

    async def reserve(
        self,
        member_id: str,
        delivery_id: str,
        now: dt.datetime,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> CapDecision:
        """Count `delivery_id` against the member's cap, or say when a slot frees up.

        Idempotent: a delivery already counted is allowed again without counting twice.
        With `conn`, it runs inside the caller's transaction (the lock is held until that
        transaction ends, so whatever the caller writes next is covered by it)."""
        if self.limit is None:
            return CapDecision(True, 0)
        # In UTC: `now - window` on a zoned datetime is wall-clock arithmetic, which is an
        # hour off across a daylight-saving change.
        now = now.astimezone(dt.UTC)
        if conn is not None:
            return await self._reserve(conn, member_id, delivery_id, now, self.limit)
        async with self.pool.acquire() as own, own.transaction():
            return await self._reserve(own, member_id, delivery_id, now, self.limit)

    async def _reserve(
        self,
        conn: asyncpg.Connection,
        member_id: str,
        delivery_id: str,
        now: dt.datetime,
        limit: int,
    ) -> CapDecision:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('jm-cap:' || $1, 0))", member_id
        )
        if await conn.fetchval(
            "SELECT 1 FROM frequency_cap_ledger WHERE delivery_id = $1", delivery_id
        ):
            return CapDecision(True, -1)
        rows = await conn.fetch(
            "SELECT counted_at FROM frequency_cap_ledger "
            "WHERE member_id = $1 AND counted_at > $2 ORDER BY counted_at DESC LIMIT $3",
            member_id,
            now - self.window,
            limit,
        )
        if len(rows) >= limit:
            # the oldest of the last `limit` sends leaves the window first
            return CapDecision(False, len(rows), rows[-1]["counted_at"] + self.window)
        await conn.execute(
            "INSERT INTO frequency_cap_ledger (delivery_id, member_id, counted_at) "
            "VALUES ($1, $2, $3)",
            delivery_id,
            member_id,
            now,
        )
        return CapDecision(True, len(rows) + 1)

    async def release(self, delivery_id: str) -> None:
        """Give back the slot of a delivery that sent nothing after all."""
        await self.pool.execute(
            "DELETE FROM frequency_cap_ledger WHERE delivery_id = $1", delivery_id
        )
