"""Re-evaluating segments as the clock moves: the members whose time-based profile fields
(lifecycle stage, recency score) can have changed since their last evaluation
(`refresh_due`, by the due moments `journeyman.engine.segments.due` keeps), or every member
(`refresh`, after the settings or the registered segments changed).

Both read profile rows a page per transaction under the profile projector's lock, so a page
never interleaves with a batch being folded; both stop, doing nothing, while the projection
replays the store (`RefreshResult.behind`)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.core.readers import PROFILES, PROFILES_LOCK
from journeyman.engine.core.settings import Settings
from journeyman.engine.segments.due import track
from journeyman.engine.segments.membership import (
    RefreshResult,
    Segments,
    _mark,
    apply_profiles,
    profile_of,
    segment_list,
)
from journeyman.event_store import PostgresEventStore

from .fold import ProfileRow, scores

log = logging.getLogger(__name__)


Page = Callable[[asyncpg.Connection, RefreshResult], Awaitable[list[asyncpg.Record]]]


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

    async def due(conn: asyncpg.Connection, _: RefreshResult) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT p.* FROM segment_due d JOIN member_profiles p USING (member_id) "
            "WHERE d.due_at IS NOT NULL AND d.due_at <= $1 "
            "ORDER BY d.due_at, d.member_id LIMIT $2",
            now,
            page_size,
        )

    return await _pages(store, segments, settings, now, page_size, on_page, RefreshResult(), due)


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

    async def every(conn: asyncpg.Connection, result: RefreshResult) -> list[asyncpg.Record]:
        records = await conn.fetch(
            "SELECT * FROM member_profiles WHERE member_id > $1 ORDER BY member_id LIMIT $2",
            result.cursor or "",
            page_size,
        )
        if records:  # a failed page is not resumed from here: the heartbeat holds the cursor
            result.cursor = records[-1]["member_id"]
        return records

    result = RefreshResult(cursor=after)
    return await _pages(store, segments, settings, now, page_size, on_page, result, every)


async def _pages(
    store: PostgresEventStore,
    segments: Segments,
    settings: Settings,
    now: dt.datetime,
    page_size: int,
    on_page: Callable[[RefreshResult], Awaitable[None] | None] | None,
    result: RefreshResult,
    read: Page,
) -> RefreshResult:
    """Page through the profiles `read` returns until a short page: score each as of `now`,
    bring its memberships in line, move its due moment on; one transaction per page."""
    chosen = segment_list(segments)
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
            records = await read(conn, result)
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
