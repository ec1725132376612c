"""Reading the store never stops at a row the driver cannot decode: the row is left out,
reported as an `UndecodableEvent`, and the reader moves past it."""

from __future__ import annotations

from deadletter_testkit import BC_TIMESTAMP, huge_integer_sql, insert_raw
from journeyman.event_store import START, NewEvent, UndecodableEvent


async def test_read_all_and_read_stream_step_over_undecodable_rows(store) -> None:
    await store.append("member-a", [NewEvent("page.viewed", {"i": 1})])
    bad1 = await insert_raw(store, "b", occurred_at=BC_TIMESTAMP)
    await store.append("member-a", [NewEvent("page.viewed", {"i": 2})])
    bad2 = await insert_raw(store, "b", data_sql=huge_integer_sql())
    await store.append("member-c", [NewEvent("page.viewed", {"i": 3})])

    bad: list[UndecodableEvent] = []
    events, cursor = await store.read_all(START, undecodable=bad)
    assert [e.data["i"] for e in events] == [1, 2, 3]
    assert [b.global_position for b in bad] == [bad1, bad2]
    assert "date value out of range" in bad[0].error
    assert bad[0].raw["occurred_at"] and bad[0].raw["occurred_at"].endswith("BC")
    assert bad[1].error.startswith("ValueError")
    assert bad[0].stream_id == "member-b" and bad[0].type == "page.viewed"

    # A batch that ends on a bad row moves the cursor past it.
    bad = []
    events, cursor = await store.read_all(START, limit=2, undecodable=bad)
    assert [e.data["i"] for e in events] == [1] and [b.global_position for b in bad] == [bad1]
    events, cursor = await store.read_all(cursor, limit=2, undecodable=bad)
    assert [e.data["i"] for e in events] == [2]
    assert [b.global_position for b in bad] == [bad1, bad2]

    # Without a list the rows are simply left out; nothing raises.
    events, _ = await store.read_all(START)
    assert len(events) == 3
    assert await store.read_stream("member-b") == []
    bad = []
    assert await store.read_stream("member-b", undecodable=bad) == []
    assert [b.stream_version for b in bad] == [0, 1]
    assert isinstance(await store.read_event(bad1), UndecodableEvent)
    assert (await store.read_event(events[0].global_position)).data == {"i": 1}


async def test_subscription_hands_over_a_batch_of_undecodable_rows_only(store) -> None:
    bad = await insert_raw(store, "b", occurred_at=BC_TIMESTAMP)
    sub = store.subscribe("t", follow=False, batch_size=10)
    seen = []
    async for events, _ in sub.batches():
        seen.append((events, [u.global_position for u in sub.undecodable]))
    assert seen == [([], [bad])]
    assert await store.load_checkpoint("t") > START


async def test_a_narrowed_read_carries_data_of_the_named_types_only(store) -> None:
    await store.append(
        "member-a",
        [
            NewEvent("page.viewed", {"i": 1}, {"source": "web", "ip": "x"}),
            NewEvent("order.placed", {"total": 5}, {"source": "api", "k": 1}),
            NewEvent("page.viewed", {"i": 2}),
        ],
    )
    bad = await insert_raw(store, "b", occurred_at=BC_TIMESTAMP)
    huge = await insert_raw(store, "b", data_sql=huge_integer_sql())
    await store.append("member-c", [NewEvent("order.placed", {"total": 7})])

    parked: list[UndecodableEvent] = []
    events, _ = await store.read_all(START, data_of={"order.placed"}, undecodable=parked)
    seen = [(e.type, e.data, e.metadata) for e in events]
    assert seen == [
        ("page.viewed", {}, {"source": "web"}),
        ("order.placed", {"total": 5}, {"source": "api", "k": 1}),
        ("page.viewed", {}, {}),
        ("page.viewed", {}, {}),  # its data is never decoded, so it is readable here
        ("order.placed", {"total": 7}, {}),
    ]
    assert events[3].global_position == huge
    assert [b.global_position for b in parked] == [bad]
    # A narrowed batch that ends on a bad row moves past it as a full read does.
    parked = []
    events, cursor = await store.read_all(START, limit=4, data_of=(), undecodable=parked)
    assert len(events) == 3 and [b.global_position for b in parked] == [bad]
    events, _ = await store.read_all(cursor, data_of=())
    assert events[0].global_position == huge
