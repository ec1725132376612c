"""Identity races, forced deterministically: a pause between the resolver's read and its
writes lets a concurrent merge or erasure land exactly there.

The pause sits in `_load_members` (called right after the resolver's read, before the
batch's transaction) or right after `_lock_and_check` (the resolver has locked the members
it read, inside the transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.identity import resolver as resolver_module
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.privacy import erase_member
from journeyman.event_store import PostgresEventStore

from tests.ingestion.helpers import event


def pause_first_calls(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    gate: Callable[[], Awaitable[None]],
    n: int,
    *,
    after: bool = False,
) -> None:
    """Make the first `n` calls of `resolver.<name>` await `gate()` before running (or,
    with `after`, once they have run)."""
    real = getattr(resolver_module, name)
    calls = 0

    async def paused(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= n and not after:
            await gate()
        result = await real(*args, **kwargs)
        if calls <= n and after:
            await gate()
        return result

    monkeypatch.setattr(resolver_module, name, paused)


async def member_of(ingestor: Ingestor, **member: Any) -> str:
    result = await ingestor.ingest_raw([event(**member)])
    assert result.accepted == 1, result
    member_id = result.results[0].member_id
    assert member_id is not None
    return member_id


async def test_two_batches_tying_one_device_to_two_members_make_one_person(
    ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three members, oldest first; the youngest owns the device.
    a = await member_of(ingestor, id="race-a")
    b = await member_of(ingestor, id="race-b")
    x = await member_of(ingestor, device_id="race-device")
    assert len({a, b, x}) == 3

    # Both batches read before either writes: each would merge the device's member into
    # its own one (a, then b), one person split in two.
    barrier = asyncio.Barrier(2)
    pause_first_calls(monkeypatch, "_load_members", barrier.wait, 2)
    r1, r2 = await asyncio.wait_for(
        asyncio.gather(
            ingestor.ingest_raw([event(id="race-a", device_id="race-device")]),
            ingestor.ingest_raw([event(id="race-b", device_id="race-device")]),
        ),
        timeout=30,
    )
    assert r1.accepted == 1 and r2.accepted == 1, (r1, r2)
    pool = ingestor.store.pool
    survivors = {await resolve_member_id(pool, m) for m in (a, b, x)}
    assert survivors == {a}, survivors
    for r in (r1, r2):  # each event went to a member that now leads to the survivor
        assert await resolve_member_id(pool, r.results[0].member_id) == a
    rows = await pool.fetch("SELECT DISTINCT member_id FROM member_aliases")
    assert {r["member_id"] for r in rows} <= {a}


async def erased_leftovers(store: PostgresEventStore, member_id: str) -> dict[str, int]:
    pool = store.pool
    return {
        "aliases": await pool.fetchval(
            "SELECT count(*) FROM member_aliases WHERE member_id = $1", member_id
        ),
        "keys": await pool.fetchval(
            "SELECT count(*) FROM member_keys WHERE member_id = $1", member_id
        ),
    }


async def assert_gone_for_good(ingestor: Ingestor, member_id: str) -> None:
    """Nothing of the erased member is readable, and its aliases lead nowhere."""
    assert await erased_leftovers(ingestor.store, member_id) == {"aliases": 0, "keys": 0}
    later = await ingestor.ingest_raw(
        [event("page.viewed", device_id="new-device", properties={"note": "personal"})]
    )
    assert later.results[0].member_id != member_id, later
    assert await erased_leftovers(ingestor.store, member_id) == {"aliases": 0, "keys": 0}


async def test_an_erasure_between_read_and_write_refuses_the_batch(
    ingestor: Ingestor, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ingestor.store
    e = await member_of(ingestor, email="erase.race@example.com")
    read_done, erased = asyncio.Event(), asyncio.Event()

    async def gate() -> None:
        read_done.set()
        await erased.wait()

    pause_first_calls(monkeypatch, "_load_members", gate, 1)
    batch = asyncio.create_task(
        ingestor.ingest_raw(
            [
                event(email="erase.race@example.com", device_id="new-device"),
                event(id="bystander"),
            ]
        )
    )
    await asyncio.wait_for(read_done.wait(), 10)
    await erase_member(store, e, settings=settings)
    erased.set()
    result = await asyncio.wait_for(batch, 30)

    assert [r.status for r in result.results] == ["rejected", "accepted"], result
    assert result.results[0].errors[0].field == "events[0].member"
    assert "erased" in result.results[0].errors[0].reason
    await assert_gone_for_good(ingestor, e)


async def test_an_erasure_waits_for_a_batch_that_locked_the_member(
    ingestor: Ingestor, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ingestor.store
    e = await member_of(ingestor, email="erase.wait@example.com")
    locked, release = asyncio.Event(), asyncio.Event()

    async def gate() -> None:
        locked.set()
        await release.wait()

    pause_first_calls(monkeypatch, "_lock_and_check", gate, 1, after=True)
    batch = asyncio.create_task(
        ingestor.ingest_raw([event(email="erase.wait@example.com", device_id="new-device")])
    )
    await asyncio.wait_for(locked.wait(), 10)
    erasure = asyncio.create_task(erase_member(store, e, settings=settings))
    await asyncio.sleep(0.5)
    assert not erasure.done(), "the erasure must wait for the batch that holds the member"
    release.set()
    result = await asyncio.wait_for(batch, 30)
    assert result.accepted == 1, result
    erased = await asyncio.wait_for(erasure, 30)
    assert erased.erased_ids == [e]
    await assert_gone_for_good(ingestor, e)
