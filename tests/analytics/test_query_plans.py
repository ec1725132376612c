"""The queries a journey report runs never loop over the history: EXPLAIN (FORMAT JSON) of
each one, recorded from a real `journey_stats` call over a few thousand events with part of
them not yet projected, shows no Nested Loop whose inner side reads `events`, the funnel
and channel counts come from the projection alone, and `events` is read only through an
index from the projection's checkpoint on."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from journeyman.engine.analytics.projector import JourneyStatsProjector
from journeyman.engine.analytics.report import journey_stats
from journeyman.engine.core.settings import Settings
from journeyman.event_store import ANY, NewEvent, PostgresEventStore

T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def member_events(i: int) -> list[NewEvent]:
    entry, did = f"e{i}", f"d{i}"
    base = {"journey": "cart_recovery", "workflow_id": f"wf{i}"}
    sent = {**base, "delivery_id": did, "channel": "email"}
    if i % 4:
        sent["entry_id"] = entry  # every fourth send as recorded before sends named their entry
    events = [
        NewEvent("journey.entered", {**base, "entry_id": entry}, event_id=f"{entry}-in"),
        NewEvent("message.sent", sent, event_id=f"{did}-s", occurred_at=T0),
        NewEvent("message.delivered", {"delivery_id": did}, event_id=f"{did}-d"),
        NewEvent("page.viewed", {"path": "/"}, event_id=f"p{i}"),
    ]
    if i % 10 == 0:
        at = (T0 + dt.timedelta(hours=1)).isoformat()
        conv = {**base, "entry_id": entry, "value": 10, "at": at, "delivery_id": did}
        events.append(NewEvent("journey.converted", conv, event_id=f"{entry}-c"))
    return events


async def fill(store: PostgresEventStore, start: int, stop: int) -> None:
    for lo in range(start, stop, 500):
        await store.append_batch(
            [(f"member-{i}", member_events(i), ANY) for i in range(lo, min(stop, lo + 500))]
        )


class Recorder:
    """A pool stand-in that records each statement a report runs, with its arguments."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as conn:
            yield _Recording(conn, self.statements)


class _Recording:
    def __init__(self, conn: asyncpg.Connection, into: list) -> None:
        self._conn, self._into = conn, into

    def transaction(self, **kw: Any) -> Any:
        return self._conn.transaction(**kw)

    async def fetch(self, sql: str, *args: Any) -> list:
        self._into.append((sql, args))
        return await self._conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self._into.append((sql, args))
        return await self._conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self._into.append((sql, args))
        return await self._conn.fetchval(sql, *args)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def relations(plan: dict[str, Any]) -> set[str]:
    return {n["Relation Name"] for n in nodes(plan) if "Relation Name" in n}


async def test_report_queries_read_the_projection_and_an_indexed_tail(
    store: PostgresEventStore,
) -> None:
    await fill(store, 0, 2500)
    await JourneyStatsProjector(store, Settings()).run_until_caught_up()
    await fill(store, 2500, 2600)  # recorded since: the report folds these itself
    await store.pool.execute("ANALYZE")
    recorder = Recorder(store.pool)
    (stats,) = await journey_stats(recorder, "cart_recovery")  # type: ignore[arg-type]
    await journey_stats(recorder, detail=False)  # type: ignore[arg-type]
    assert stats.total.entered == 2600 and stats.total.messaged == 2600
    assert stats.total.delivered == 2600 and stats.total.converted == 260
    assert len(recorder.statements) >= 6

    reads_events = 0
    for sql, args in recorder.statements:
        raw = await store.pool.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        for node in nodes(plan):
            if node["Node Type"] == "Nested Loop":
                inner = node["Plans"][1]
                assert "events" not in relations(inner), f"nested loop over events in:\n{sql}"
        if "events" in relations(plan):
            reads_events += 1
            scans = [n for n in nodes(plan) if n.get("Relation Name") == "events"]
            assert all(n["Node Type"] != "Seq Scan" for n in scans), f"{sql}\n{scans}"
        if "journey_funnel_counts" in sql or "journey_channel_counts" in sql:
            assert relations(plan) <= {"journey_funnel_counts", "journey_channel_counts"}
    assert reads_events == 2  # the unprojected tail, once per report


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_the_deliveries_page_reads_a_rare_journey_by_its_index(
    store: PostgresEventStore,
) -> None:
    """Filtered to one journey, the page reads that journey's latest events backwards; it
    does not walk the history back until it has found enough of a rare journey's events."""
    from journeyman.engine.api.dashboard import (
        _MESSAGE_TYPES,
        _RECENT,
        COUNT_WINDOW,
        JOURNEY_FILTER,
    )

    rare = [
        NewEvent("message.sent", {"journey": "birthday", "delivery_id": f"b{i}"}, event_id=f"b{i}")
        for i in range(3)
    ]
    await store.append("member-rare", rare, ANY)
    await fill(store, 0, 3000)  # the common journey's history, all after the rare one
    async with store.pool.acquire() as conn:
        await conn.execute("ANALYZE events")
        query = f"SELECT type, count(*) FROM ({_RECENT.format(where=JOURNEY_FILTER)}) r GROUP BY 1"
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", _MESSAGE_TYPES, COUNT_WINDOW, "birthday"
        )
        counts = await conn.fetch(query, _MESSAGE_TYPES, COUNT_WINDOW, "birthday")
    assert {r["type"]: r["count"] for r in counts} == {"message.sent": 3}
    scans = [n for n in _nodes(json.loads(raw)[0]["Plan"]) if n.get("Relation Name") == "events"]
    assert [n.get("Index Name") for n in scans] == ["events_journey_position_idx"]
    assert scans[0]["Actual Rows"] == 3  # the rare journey's rows, not the history
