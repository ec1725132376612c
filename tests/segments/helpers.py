"""Helpers of the segment tests: events on member streams, and what came of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from journeyman.event_store import NewEvent, PostgresEventStore, RecordedEvent


async def order(
    store: PostgresEventStore,
    member: str,
    total: float,
    at: dt.datetime,
    type: str = "order.placed",
) -> None:
    amount = "amount" if type == "order.refunded" else "total"
    await store.append(f"member-{member}", [NewEvent(type, {amount: total}, occurred_at=at)])


async def segment_events(store: PostgresEventStore, member: str) -> list[RecordedEvent]:
    return [
        e
        for e in await store.read_stream(f"member-{member}")
        if e.type in ("segment.entered", "segment.exited")
    ]


async def changes(store: PostgresEventStore, member: str) -> list[tuple[str, Any]]:
    """(type, segment) of every segment event of the member, in stream order."""
    return [(e.type, e.data["segment"]) for e in await segment_events(store, member)]


async def members(store: PostgresEventStore) -> set[tuple[str, str]]:
    rows = await store.pool.fetch("SELECT segment, member_id FROM segment_memberships")
    return {(r["segment"], r["member_id"]) for r in rows}


async def all_segment_events(store: PostgresEventStore) -> int:
    return await store.pool.fetchval(
        "SELECT count(*) FROM events WHERE type IN ('segment.entered', 'segment.exited')"
    )
