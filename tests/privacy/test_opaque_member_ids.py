"""A member id inside the store is opaque: the client's user id (often an email or a phone
number, as Segment integrations send it) is an alias, blind-indexed, and erasure leaves
nothing in any table or event id that reveals it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.event_store import ANY, NewEvent, PostgresEventStore
from journeyman.migrations import upgrade

from tests.ingestion.helpers import event

from .conftest import Api, make_settings

USER_ID = "ann.userid@example.com"
PHONE_USER_ID = "+14155550142"


async def everything_in_clear(pool: asyncpg.Pool) -> str:
    """Every row of every table of the database, as text (bytea as hex)."""
    tables = await pool.fetch(
        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t "
        "FROM information_schema.tables WHERE table_schema NOT IN "
        "('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'"
    )
    parts = []
    for r in tables:
        parts.extend(x["row"] for x in await pool.fetch(f"SELECT s::text AS row FROM {r['t']} s"))
    return "\n".join(parts)


async def test_user_ids_never_reach_stream_ids_and_erasure_leaves_no_trace(api: Api) -> None:
    pool = api.store.pool
    async with api.client("ingest") as c:
        r = await c.post(
            "/v1/events",
            json={
                "events": [
                    event("member.registered", id=USER_ID, properties={"plan": "gold"}),
                    event("order.placed", id=USER_ID, properties={"total": 12.5}),
                ]
            },
        )
        assert r.status_code == 200, r.text
        member = r.json()["results"][0]["member_id"]
        assert member != USER_ID and USER_ID not in member
        assert {x["member_id"] for x in r.json()["results"]} == {member}
        # Segment: a phone number as userId.
        r = await c.post(
            "/v1/track",
            json={"userId": PHONE_USER_ID, "event": "Order Completed", "messageId": "seg-1"},
        )
        assert r.status_code == 200, r.text
    await api.project()
    clear = await everything_in_clear(pool)
    assert USER_ID not in clear and PHONE_USER_ID not in clear
    assert await pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1", f"member-{member}"
    )

    # The API keeps answering to the client's id (and to the store's).
    async with api.client("admin") as c:
        for name in (USER_ID, member):
            r = await c.get(f"/v1/members/{name}")
            assert r.status_code == 200, r.text
            assert r.json()["member_id"] == member
            r = await c.get(f"/v1/members/{name}/events")
            assert r.status_code == 200 and r.json()["member_id"] == member, r.text
        r = await c.get(f"/v1/members/{USER_ID}/export")
        assert r.status_code == 200, r.text
        assert USER_ID in r.text  # export returns everything known, the user id included
        for name in (USER_ID, PHONE_USER_ID):
            r = await c.delete(f"/v1/members/{name}")
            assert r.status_code == 200, r.text
        assert r.json()["erased_ids"] != [PHONE_USER_ID]

    clear = await everything_in_clear(pool)
    assert USER_ID not in clear and PHONE_USER_ID not in clear
    event_ids = "\n".join(r["event_id"] for r in await pool.fetch("SELECT event_id FROM events"))
    assert USER_ID not in event_ids and PHONE_USER_ID not in event_ids

    # The erased user id stays refused: no new record of the person starts.
    async with api.client("ingest") as c:
        r = await c.post("/v1/events", json={"events": [event(id=USER_ID)]})
        assert r.status_code == 422, r.text
        assert r.json()["results"][0]["errors"][0]["field"] == "events[0].member.id"
    assert USER_ID not in await everything_in_clear(pool)


async def test_members_from_before_the_upgrade_keep_their_id_and_history(
    pg_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A store migrated from 0006: existing members keep their id as the store's id, so
    their history, profile and journeys stay; their client id keeps reaching them."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.database_url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = pg_server.database_url(name)
    await asyncio.to_thread(upgrade, url, "0006")
    store = await PostgresEventStore.connect(url, min_size=1, max_size=4)
    try:
        await store.pool.execute("INSERT INTO members (member_id) VALUES ('old-kate')")
        await store.append("member-old-kate", [NewEvent("page.viewed", {})], ANY)
        await store.append("member-stream-only", [NewEvent("page.viewed", {})], ANY)
        await asyncio.to_thread(upgrade, url)

        settings = make_settings(tmp_path)
        ingestor = Ingestor(store, settings)
        result = await ingestor.ingest_raw(
            [event(id="old-kate"), event(id="stream-only"), event(id="new-kate")]
        )
        ids = [r.member_id for r in result.results]
        assert ids[:2] == ["old-kate", "stream-only"], result
        assert ids[2] not in (None, "new-kate")
        keyring = Keyring(settings.resolved_secret())
        # The alias is recorded: the blind index finds the old member from now on.
        owner = await store.pool.fetchval(
            "SELECT member_id FROM member_aliases WHERE kind = 'user_id' AND blind = $1",
            keyring.blind("user_id", "old-kate"),
        )
        assert owner == "old-kate"
        again = await ingestor.ingest_raw([event(id="old-kate")])
        assert again.results[0].member_id == "old-kate"
        assert len(await store.read_stream("member-old-kate")) == 3
    finally:
        await store.close()
        admin = await asyncpg.connect(pg_server.database_url("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
