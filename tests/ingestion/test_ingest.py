"""Ingestion through `Ingestor`: outcomes, idempotency, identity, encryption at rest."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from journeyman.engine.identity import get_contact_points
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.event_store import PostgresEventStore

from tests.lock_waits import until_a_session_waits_on_a_lock

from .helpers import event


async def test_accepts_and_appends_to_member_stream(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    result = await ingestor.ingest_raw(
        [event("cart.updated", id="m-1", properties={"items": 2}, event_id="e1")]
    )
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, 0)
    outcome = result.results[0]
    # The client's id is an alias: the store's member id is the engine's own.
    assert outcome.status == "accepted" and outcome.member_id not in (None, "m-1")
    [stored] = await store.read_stream(f"member-{outcome.member_id}")
    assert stored.event_id == "e1" and stored.type == "cart.updated"
    assert stored.data == {"items": 2}
    assert stored.global_position == outcome.global_position
    assert stored.metadata["source"] == "api"


async def test_duplicate_event_id_is_acknowledged_not_stored_twice(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    first = await ingestor.ingest_raw([event(id="m-1", event_id="e1")])
    again = await ingestor.ingest_raw(
        [event(id="m-1", event_id="e1"), event(id="m-1", event_id="e2")]
    )
    assert [o.status for o in again.results] == ["duplicate", "accepted"]
    assert again.results[0].global_position == first.results[0].global_position
    assert len(await store.read_stream(f"member-{first.results[0].member_id}")) == 2
    inside = await ingestor.ingest_raw(
        [event(id="m-2", event_id="e3"), event(id="m-2", event_id="e3")]
    )
    assert [o.status for o in inside.results] == ["accepted", "duplicate"]
    assert len(await store.read_stream(f"member-{inside.results[0].member_id}")) == 1


async def test_rejected_events_store_nothing_and_name_the_field(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    result = await ingestor.ingest_raw(
        [
            event(email="not-an-email"),
            event(phone="0612345678"),
            event("Cart Updated", id="m"),
            event(id="m", at=future),
            event("member.merged", id="m"),
            {**event(id="m"), "occurred_at": "2026-01-01T00:00:00"},
            event(),
            event(id="m", properties={"bad": "a\x00b"}),
            event(id="m-ok"),
        ]
    )
    fields = [[e.field for e in o.errors] for o in result.results]
    assert fields[:8] == [
        ["events[0].member.email"],
        ["events[1].member.phone"],
        ["events[2].type"],
        ["events[3].occurred_at"],
        ["events[4].type"],
        ["events[5].occurred_at"],
        ["events[6].member"],
        ["events[7].properties.bad"],
    ]
    assert "E.164" in result.results[1].errors[0].reason
    assert "future" in result.results[3].errors[0].reason
    assert result.results[8].status == "accepted"
    async with store.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 1
        assert await c.fetchval("SELECT count(*) FROM members") == 1


async def test_aliases_resolve_to_one_member_and_link(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    a = await ingestor.ingest_raw([event(email="Ann@Example.com ")])
    member = a.results[0].member_id
    assert member
    b = await ingestor.ingest_raw(
        [event(email="ann@example.com", phone="+44 20 7946 0958", event_id="e-link")]
    )
    assert b.results[0].member_id == member
    c = await ingestor.ingest_raw([event(phone="+442079460958")])
    assert c.results[0].member_id == member
    types = [e.type for e in await store.read_stream(f"member-{member}")]
    assert types == ["page.viewed", "member.identified", "page.viewed", "page.viewed"]


async def test_event_proving_two_members_are_one_merges_them(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    older = (await ingestor.ingest_raw([event(email="a@example.com")])).results[0].member_id
    newer = (await ingestor.ingest_raw([event(device_id="dev-1")])).results[0].member_id
    assert older != newer
    proof = await ingestor.ingest_raw([event(email="a@example.com", device_id="dev-1")])
    assert proof.results[0].member_id == older
    later = await ingestor.ingest_raw([event(device_id="dev-1"), event(id=newer)])
    assert [o.member_id for o in later.results] == [older, older]
    merged = [e for e in await store.read_stream(f"member-{older}") if e.type == "member.merged"]
    assert merged[0].data["merged"] == newer and merged[0].data["survivor"] == older
    assert [e.type for e in await store.read_stream(f"member-{newer}")][-1] == "member.merged"


async def test_contact_points_are_encrypted_at_rest(
    ingestor: Ingestor, store: PostgresEventStore, settings
) -> None:  # type: ignore[no-untyped-def]
    push = {"type": "fcm", "token": "tok-123"}
    res = await ingestor.ingest_raw(
        [
            event(
                email="secret.person@example.com",
                phone="+14155550123",
                push_subscriptions=[push],
            )
        ]
    )
    member = res.results[0].member_id
    async with store.pool.acquire() as c:
        dump = await c.fetchval(
            "SELECT string_agg(t::text, ' ') FROM ("
            " SELECT data::text || metadata::text AS t FROM events"
            " UNION ALL SELECT encode(value_enc, 'escape') FROM member_aliases"
            " UNION ALL SELECT encode(value_enc, 'escape') FROM push_subscriptions) x"
        )
    assert "secret.person" not in dump and "4155550123" not in dump and "tok-123" not in dump
    from journeyman.engine.identity.crypto import Keyring

    points = await get_contact_points(
        store.pool, member, keyring=Keyring(settings.resolved_secret())
    )
    assert points["email"] == "secret.person@example.com"
    assert points["phone"] == "+14155550123"
    assert points["push"] == [push]


async def test_concurrent_batches_with_the_same_new_alias_agree(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:

    results = await asyncio.gather(
        *[ingestor.ingest_raw([event(email="race@example.com")]) for _ in range(6)]
    )
    members = {r.results[0].member_id for r in results}
    assert len(members) == 1
    async with store.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM member_aliases") == 1
        assert await c.fetchval("SELECT count(*) FROM events") == 6


async def test_unique_violation_outside_retry_is_not_swallowed(
    ingestor: Ingestor,
) -> None:
    assert issubclass(asyncpg.UniqueViolationError, asyncpg.IntegrityConstraintViolationError)


async def test_the_engines_own_event_types_cannot_be_posted(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    """A client cannot claim a conversion or a segment entry: only the engine records them."""
    types = ["journey.converted", "journey.entered", "segment.entered", "member.erased"]
    result = await ingestor.ingest_raw([event(t, id="m-own") for t in types])
    assert [o.status for o in result.results] == ["rejected"] * len(types)
    assert all("reserved" in o.errors[0].reason for o in result.results)
    assert await store.pool.fetchval("SELECT count(*) FROM events") == 0


async def test_concurrent_batches_for_one_member_both_commit_without_a_retry(
    ingestor: Ingestor, store: PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches for one existing member: the second starts while the first holds the
    member's stream between reading its head and committing. It waits, then appends after
    it; neither batch is rolled back and planned again."""
    first = await ingestor.ingest_raw([event(id="same-member")])
    member_id = first.results[0].member_id
    appends = 0
    real_tx = PostgresEventStore._append_tx
    real_copy = PostgresEventStore._copy_rows
    first_read, release = asyncio.Event(), asyncio.Event()

    async def counted(self: PostgresEventStore, *args: object, **kwargs: object) -> object:
        nonlocal appends
        appends += 1
        return await real_tx(self, *args, **kwargs)  # type: ignore[arg-type]

    async def paused(*args: object) -> None:
        if not first_read.is_set():
            first_read.set()
            await release.wait()
        await real_copy(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(PostgresEventStore, "_append_tx", counted)
    monkeypatch.setattr(PostgresEventStore, "_copy_rows", staticmethod(paused))
    batches = [[event(id="same-member") for _ in range(n)] for n in (3, 2)]
    tasks = [asyncio.create_task(ingestor.ingest_raw(batches[0]))]
    await asyncio.wait_for(first_read.wait(), 10)
    tasks.append(asyncio.create_task(ingestor.ingest_raw(batches[1])))
    await until_a_session_waits_on_a_lock(store.pool, "the second batch never waited for the first")
    release.set()
    r1, r2 = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert (r1.accepted, r2.accepted) == (3, 2)
    assert appends == 2, f"{appends - 2} append(s) were rolled back and retried"
    versions = [e.stream_version for e in await store.read_stream(f"member-{member_id}")]
    assert versions == list(range(6))
