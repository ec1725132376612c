from event_store import NewEvent, PostgresEventStore


async def test_append_and_read_back(store: PostgresEventStore) -> None:
    results = await store.append("member-1", [NewEvent("page.viewed", {"url": "/"})])
    assert results[0].stream_version == 0
    events = await store.read_stream("member-1")
    assert [e.type for e in events] == ["page.viewed"]
    assert events[0].data == {"url": "/"}
