"""Property tests: whatever sequence of appends happens, reads give back exactly the writes."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeyman.event_store import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    NewEvent,
    PostgresEventStore,
    StaleTransactionError,
)

op = st.tuples(
    st.integers(0, 3),  # which stream
    st.integers(1, 4),  # how many events
    st.sampled_from(["any", "right", "stale", "no_stream"]),
    st.booleans(),  # re-send an earlier event id as well
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(op, min_size=1, max_size=12))
async def test_read_your_writes(store: PostgresEventStore, ops: list) -> None:
    prefix = uuid.uuid4().hex[:8]
    model: dict[str, list[str]] = {}
    stored_ids: list[str] = []
    start = await store.head()
    counter = 0
    for stream_no, n, mode, resend in ops:
        stream = f"p{prefix}-{stream_no}"
        current = len(model.get(stream, [])) - 1
        expected = {
            "any": ANY,
            "right": current,
            "stale": current - 1 if current >= 0 else 0,
            "no_stream": NO_STREAM,
        }[mode]
        events = []
        for _ in range(n):
            counter += 1
            events.append(
                NewEvent("thing.happened", {"i": counter}, event_id=f"{prefix}-{counter}")
            )
        if resend and stored_ids:
            events.insert(0, NewEvent("thing.happened", {}, event_id=stored_ids[0]))
        should_fail = (mode == "stale") or (mode == "no_stream" and current != -1)
        try:
            results = await store.append(stream, events, expected)
        except ConcurrencyError:
            assert should_fail
            continue
        assert not should_fail
        for event, result in zip(events, results, strict=True):
            if result.duplicate:
                assert event.event_id in stored_ids
                continue
            model.setdefault(stream, []).append(event.event_id)
            stored_ids.append(event.event_id)
            assert result.stream_version == len(model[stream]) - 1
        read = await store.read_stream(stream)
        assert [e.event_id for e in read] == model[stream]
        backwards = await store.read_stream(stream, backwards=True, limit=2)
        assert [e.event_id for e in backwards] == model[stream][::-1][:2]
    everything, _ = await store.read_all(start, limit=10_000)
    mine = [e.event_id for e in everything if e.stream_id.startswith(f"p{prefix}-")]
    assert mine == stored_ids


async def test_append_in_an_older_transaction_behind_a_newer_one_is_refused(
    store: PostgresEventStore,
) -> None:
    await store.append("member-o", [NewEvent("a", event_id="o1")])
    async with store.pool.acquire() as older:
        tx = older.transaction()
        await tx.start()
        await older.execute("SELECT pg_current_xact_id()")
        await store.append("member-o", [NewEvent("a", event_id="o2")])  # newer, commits
        with pytest.raises(StaleTransactionError, match="stream member-o was appended to"):
            await store.append("member-o", [NewEvent("a", event_id="o3")], conn=older)
        await tx.rollback()
    assert [e.event_id for e in await store.read_stream("member-o")] == ["o1", "o2"]
