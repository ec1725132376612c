"""Appends: optimistic concurrency, idempotency, atomic batches and bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import asyncpg
import pytest
from journeyman.event_store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ConcurrencyError,
    InvalidEventError,
    NewEvent,
    PostgresEventStore,
)

from tests.lock_waits import until_a_session_waits_on_a_lock


def ev(event_id: str, type_: str = "page.viewed", **data: object) -> NewEvent:
    return NewEvent(type_, dict(data), event_id=event_id)


async def count(store: PostgresEventStore) -> int:
    async with store.pool.acquire() as c:
        return await c.fetchval("SELECT count(*) FROM events")


async def test_versions_start_at_zero_and_increase(store: PostgresEventStore) -> None:
    first = await store.append("member-a", [ev("e1"), ev("e2")], NO_STREAM)
    second = await store.append("member-a", [ev("e3")], 1)
    assert [r.stream_version for r in first + second] == [0, 1, 2]
    assert first[0].global_position < first[1].global_position < second[0].global_position
    assert await store.stream_version("member-a") == 2
    assert await store.stream_version("member-none") == -1


async def test_stale_expected_version_names_stream_and_versions(store: PostgresEventStore) -> None:
    await store.append("member-42", [ev(f"x{i}") for i in range(8)])
    with pytest.raises(ConcurrencyError) as info:
        await store.append("member-42", [ev("late")], expected_version=5)
    assert str(info.value) == "stream member-42 is at version 7, the append expected version 5"
    assert info.value.actual == 7
    with pytest.raises(ConcurrencyError, match="no stream"):
        await store.append("member-42", [ev("late2")], NO_STREAM)
    with pytest.raises(ConcurrencyError, match="has no events"):
        await store.append("member-new", [ev("late3")], STREAM_EXISTS)
    assert await count(store) == 8


async def test_exactly_one_of_racing_appends_wins(store: PostgresEventStore) -> None:
    await store.append("member-race", [ev("base")])
    for round_ in range(10):
        version = await store.stream_version("member-race")
        outcomes = await asyncio.gather(
            *(
                store.append("member-race", [ev(f"r{round_}-{i}")], expected_version=version)
                for i in range(4)
            ),
            return_exceptions=True,
        )
        wins = [o for o in outcomes if not isinstance(o, BaseException)]
        losses = [o for o in outcomes if isinstance(o, ConcurrencyError)]
        assert len(wins) == 1 and len(losses) == 3, outcomes
    assert await store.stream_version("member-race") == 10


async def test_racing_appends_with_any_all_land_in_order(store: PostgresEventStore) -> None:
    await asyncio.gather(*(store.append("member-any", [ev(f"any{i}")], ANY) for i in range(20)))
    events = await store.read_stream("member-any")
    assert [e.stream_version for e in events] == list(range(20))
    assert sorted(e.event_id for e in events) == sorted(f"any{i}" for i in range(20))


async def test_reappending_an_event_id_returns_original_position(
    store: PostgresEventStore,
) -> None:
    original = await store.append("member-b", [ev("once"), ev("twice")])
    again = await store.append("member-b", [ev("once"), ev("twice")], expected_version=NO_STREAM)
    assert [(r.global_position, r.stream_version) for r in again] == [
        (r.global_position, r.stream_version) for r in original
    ]
    assert all(r.duplicate for r in again) and not any(r.duplicate for r in original)
    mixed = await store.append("member-b", [ev("once"), ev("new")])
    assert [r.duplicate for r in mixed] == [True, False]
    assert mixed[1].stream_version == 2
    assert await count(store) == 3


async def test_concurrent_duplicates_store_once(store: PostgresEventStore) -> None:
    results = await asyncio.gather(
        *(store.append(f"member-d{i}", [ev("same-id")]) for i in range(6))
    )
    assert await count(store) == 1
    positions = {r[0].global_position for r in results}
    assert len(positions) == 1
    assert sum(not r[0].duplicate for r in results) == 1


async def test_batch_across_streams_is_one_transaction(store: PostgresEventStore) -> None:
    await store.append("member-c", [ev("c0")])
    with pytest.raises(ConcurrencyError):
        await store.append_batch(
            [
                ("member-x", [ev("x0"), ev("x1")], NO_STREAM),
                ("member-c", [ev("c1")], NO_STREAM),
            ]
        )
    assert await count(store) == 1
    results = await store.append_batch(
        [
            ("member-x", [ev("x0")], NO_STREAM),
            ("member-c", [ev("c1")], 0),
            ("member-x", [ev("x1")], 0),
        ]
    )
    assert [(r.stream_id, r.stream_version) for r in results] == [
        ("member-x", 0),
        ("member-c", 1),
        ("member-x", 1),
    ]


async def test_metadata_occurred_at_and_category_are_kept(store: PostgresEventStore) -> None:
    when = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    await store.append(
        "member-m",
        [NewEvent("order.placed", {"total": 12.5}, {"source": "shop"}, "m1", when)],
    )
    (event,) = await store.read_stream("member-m")
    assert event.occurred_at == when
    assert event.metadata == {"source": "shop"}
    assert event.category == "member"
    assert event.recorded_at.tzinfo is not None


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [("member-1", [NewEvent("t", {"when": dt.date(2026, 1, 1)}, event_id="e")], ANY)],
            "data of event e is not JSON-serialisable",
        ),
        (
            [("member-1", [NewEvent("t", {}, {"x": {1, 2}}, event_id="e")], ANY)],
            "metadata of event e is not JSON-serialisable",
        ),
        (
            [("member-1", [NewEvent("t", {"v": float("nan")}, event_id="e")], ANY)],
            "not JSON-serialisable",
        ),
        ([("", [ev("e")], ANY)], "stream id must be a non-empty string"),
        ([("member-1", [ev("dup"), ev("dup")], ANY)], "event id dup appears twice in one batch"),
        (
            [("member-1", [ev("e")], ANY), ("member-2", [ev("e")], ANY)],
            "event id e appears twice in one batch",
        ),
        ([("member-1", [NewEvent("", {}, event_id="e")], ANY)], "type must be a non-empty string"),
        (
            [
                (
                    "member-1",
                    [NewEvent("t", {}, event_id="e", occurred_at=dt.datetime(2026, 1, 1))],
                    ANY,
                )
            ],
            "occurred_at must be a timezone-aware",
        ),
        ([("member-1", [NewEvent("t", {"s": "a\x00b"}, event_id="e")], ANY)], "NUL"),
        ([("member-1", [ev("e")], -5)], "expected_version for stream member-1 must be >= -1"),
    ],
)
async def test_bad_input_is_named_and_stores_nothing(
    store: PostgresEventStore, items: list, message: str
) -> None:
    good = ("member-ok", [ev("good-1")], ANY)
    with pytest.raises(InvalidEventError, match=message):
        await store.append_batch([good, *items])
    assert await count(store) == 0


async def test_events_table_rejects_update_and_delete(store: PostgresEventStore) -> None:
    await store.append("member-z", [ev("z")])
    async with store.pool.acquire() as c:
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await c.execute("UPDATE events SET type = 'changed'")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await c.execute("DELETE FROM events")
    assert [e.type for e in await store.read_stream("member-z")] == ["page.viewed"]


async def test_awkward_text_round_trips(store: PostgresEventStore) -> None:
    """Tabs, newlines, backslashes, quotes and non-ASCII survive the COPY path unchanged."""
    data = {"text": 'tab\there\nnew "line" \\ back\\slash \\n not-a-newline', "emoji": "🛒 ß"}
    stream = "member-we\tird\\id\nx"
    when = dt.datetime(2026, 10, 25, 1, 59, 59, 999999, tzinfo=dt.UTC)
    await store.append(
        stream,
        [NewEvent("cart.updated\\x", data, {"note": "a\\b\tc"}, "id\\with\ttab", when)],
    )
    (event,) = await store.read_stream(stream)
    assert event.stream_id == stream
    assert event.event_id == "id\\with\ttab"
    assert event.type == "cart.updated\\x"
    assert event.data == data
    assert event.metadata == {"note": "a\\b\tc"}
    assert event.occurred_at == when
    # Backslashes but no tab or newline in any id: the batch is escaped in one pass.
    plain = "member-back\\slash"
    await store.append(plain, [NewEvent("x\\y", data, {"m": "\\"}, "e\\1", when)])
    (event,) = await store.read_stream(plain)
    assert (event.stream_id, event.type, event.event_id) == (plain, "x\\y", "e\\1")
    assert event.data == data
    assert event.metadata == {"m": "\\"}


async def test_concurrent_batches_over_the_same_streams_all_land(
    store: PostgresEventStore,
) -> None:
    """Six writers, big batches, the same 30 hot streams: no deadlock, no give-up, no gap."""

    async def writer(w: int) -> None:
        rng = random.Random(w)
        for b in range(4):
            streams = [f"member-hot{i % 30}" for i in range(300)]
            rng.shuffle(streams)  # every batch meets the streams in a different order
            await store.append_batch(
                [(s, [ev(f"h{w}-{b}-{i}")], ANY) for i, s in enumerate(streams)]
            )

    await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(6))), 120)
    assert await count(store) == 6 * 4 * 300
    async with store.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT stream_id, count(*) AS n, max(stream_version) AS top FROM events "
            "GROUP BY stream_id"
        )
    assert len(rows) == 30
    assert all(r["top"] == r["n"] - 1 for r in rows)  # versions 0..n-1 without holes


async def test_appends_with_any_to_one_stream_queue_instead_of_conflicting(
    store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second append starts while the first holds the stream between reading its head
    and committing: it waits and continues from the first one's version, with no retry."""
    await store.append("member-q", [ev("q0")])
    attempts = 0
    real_tx = PostgresEventStore._append_tx
    real_copy = PostgresEventStore._copy_rows
    first_read, release = asyncio.Event(), asyncio.Event()

    async def counted(self: PostgresEventStore, *args: object, **kwargs: object) -> object:
        nonlocal attempts
        attempts += 1
        return await real_tx(self, *args, **kwargs)  # type: ignore[arg-type]

    async def paused(*args: object) -> None:
        if not first_read.is_set():
            first_read.set()  # the first append has read the head: hold it there
            await release.wait()
        await real_copy(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresEventStore, "_append_tx", counted)
    monkeypatch.setattr(PostgresEventStore, "_copy_rows", staticmethod(paused))
    first = asyncio.create_task(store.append("member-q", [ev("q1")], ANY))
    await asyncio.wait_for(first_read.wait(), 10)
    second = asyncio.create_task(store.append("member-q", [ev("q2")], ANY))
    await until_a_session_waits_on_a_lock(store.pool, "no session ever waited on a lock")
    release.set()
    one, two = await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert (one[0].stream_version, two[0].stream_version) == (1, 2)
    assert attempts == 2, f"{attempts - 2} append(s) were retried"
    events = await store.read_stream("member-q")
    assert [e.event_id for e in events] == ["q0", "q1", "q2"]
