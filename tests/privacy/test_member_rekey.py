"""`journeyman members rekey`: members created before member ids became opaque (their store
id is the client's id, here an email) get an id of the engine's own; nothing in any table,
stream id or event id names the email afterwards, and the client's id still reaches them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from journeyman.engine.activities.instances import mark_started
from journeyman.engine.analytics.projector import JourneyStatsProjector
from journeyman.engine.delivery.links import LinkSigner
from journeyman.engine.identity import resolver as resolver_module
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.identity.member_ids import is_minted
from journeyman.engine.identity.rekey import DISPATCHER, _Ids, count, rekey_all, rekey_member
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.privacy import erase_member
from journeyman.event_store import ANY, START, NewEvent, PostgresEventStore
from journeyman.event_store.deadletters import park
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.ingestion.helpers import event

from .conftest import SECRET, Api
from .sleeper import Sleeper
from .test_opaque_member_ids import everything_in_clear

KATE = "kate@example.com"
KATE_PHONE = "+14155550199"
OLD_DEVICE = "k2@example.com"
RON = "ron@example.com"
WID = f"journey/cart_recovery/{KATE}/cart-1"
DID = "d" * 32
T = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


async def legacy_member(api: Api, member_id: str, **aliases: Any) -> None:
    """A member as a store from before opaque ids has it: its id is the client's id."""
    await api.store.pool.execute("INSERT INTO members (member_id) VALUES ($1)", member_id)
    # as the code of that time appended (no identity, nothing sealed)
    await api.store.append(
        f"member-{member_id}",
        [NewEvent("page.viewed", {"url": "/home", "user_id": member_id}, {"source": "api"})],
        ANY,
    )


async def build_legacy_store(api: Api) -> None:
    store, pool = api.store, api.store.pool
    await legacy_member(api, KATE)
    await legacy_member(api, OLD_DEVICE)
    async with api.client("ingest") as c:
        r = await c.post(
            "/v1/events",
            json={
                "events": [
                    event(
                        "member.registered",
                        id=KATE,
                        email=KATE,
                        phone=KATE_PHONE,
                        properties={"plan": "gold"},
                    ),
                    event("order.placed", id=KATE, properties={"total": 12.5, "order_id": "o-1"}),
                    # the old device's id and Kate's email: one person, merged into Kate
                    event("app.opened", id=OLD_DEVICE, email=KATE),
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert {x["member_id"] for x in r.json()["results"]} == {KATE}
    async with api.client("admin") as c:
        r = await c.put(
            f"/v1/members/{KATE}/consent",
            json={"changes": [{"channel": "sms", "granted": False}], "evidence": {"ip": "1.2.3.4"}},
        )
        assert r.status_code == 200, r.text
    # What journeys and delivery wrote for her (shapes of journeyman.engine.contracts / delivery).
    meta = {"source": "journey", "correlation_id": WID}
    await store.append(
        f"member-{KATE}",
        [
            NewEvent(
                "journey.entered",
                {"journey": "cart_recovery", "workflow_id": WID, "entry_id": "e1"},
                meta,
                event_id=f"journey.entered/{WID}/e1",
            ),
            NewEvent(
                "message.sent",
                {
                    "delivery_id": DID,
                    "journey": "cart_recovery",
                    "workflow_id": WID,
                    "entry_id": "e1",
                },
                meta,
                event_id=f"message.sent/{DID}",
            ),
        ],
        ANY,
    )
    await store.append(
        f"delivery-{DID}",
        [
            NewEvent(
                "delivery.recorded",
                {"request": {"member_id": KATE, "workflow_id": WID}, "outcome": {}},
                meta,
                event_id=f"delivery/{DID}",
            )
        ],
        ANY,
    )
    await pool.execute(
        "INSERT INTO journey_instances (workflow_id, journey, member_id, key, entries) "
        "VALUES ($1, 'cart_recovery', $2, 'cart-1', 1)",
        WID,
        KATE,
    )
    await pool.execute(
        "INSERT INTO message_ledger (delivery_id, member_id, workflow_id, status, status_rank) "
        "VALUES ($1, $2, $3, 'sent', 1)",
        DID,
        KATE,
        WID,
    )
    await pool.execute(
        "INSERT INTO frequency_cap_ledger (delivery_id, member_id, counted_at) "
        "VALUES ($1, $2, now())",
        DID,
        KATE,
    )
    await pool.execute(
        "INSERT INTO segment_memberships (segment, member_id, entered_at) "
        "VALUES ('buyers', $1, now())",
        KATE,
    )
    await pool.execute(
        "INSERT INTO carts (cart_id, member_id, items, updated_at) VALUES ('c-1', $1, '[]', now())",
        KATE,
    )
    first = (await store.read_stream(f"member-{KATE}", limit=1))[0]
    await park(pool, "member_profiles", first, "test: a parked event")
    await store.append(
        f"member-{KATE}",
        [NewEvent("segment.entered", {"segment": "buyers"}, {}, event_id=f"x/buyers/3/{KATE}")],
        ANY,
    )
    await api.project()
    # The analytics projection's facts name the run by its workflow id, which holds her id.
    await JourneyStatsProjector(store, api.settings).run_until_caught_up()
    facts = "SELECT count(*) FROM journey_entries WHERE workflow_id = $1"
    assert await pool.fetchval(facts, WID) == 1


async def timeline(api: Api, name: str) -> dict[str, Any]:
    async with api.client("read") as c:
        r = await c.get(f"/v1/members/{name}/events", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()


async def test_rekey_moves_a_legacy_member_to_an_opaque_id(api: Api) -> None:
    pool = api.store.pool
    keyring = Keyring(api.settings.resolved_secret())
    await build_legacy_store(api)
    before = await timeline(api, KATE)
    assert before["member_id"] == KATE
    assert KATE in await everything_in_clear(pool)
    async with api.client("read") as c:
        profile_before = (await c.get(f"/v1/members/{KATE}")).json()
    positions = [r["global_position"] for r in await pool.fetch("SELECT * FROM events ORDER BY 1")]

    # Two at a time: Kate and the id merged into her are re-keyed side by side.
    result = await rekey_all(api.store, keyring, concurrency=2)
    assert (result.rekeyed, result.skipped_running, result.legacy) == (2, 0, 0)

    clear = await everything_in_clear(pool)
    for secret in (KATE, OLD_DEVICE, KATE_PHONE):
        assert secret not in clear
    assert [
        r["global_position"] for r in await pool.fetch("SELECT * FROM events ORDER BY 1")
    ] == positions

    # The client's id reaches the same member, with the same history (sealed fields
    # readable) and profile.
    new_id = await api.store_id(KATE)
    assert is_minted(new_id)
    after = await timeline(api, KATE)
    assert after["member_id"] == new_id
    assert [(e["type"], e["stream_version"]) for e in after["events"]] == [
        (e["type"], e["stream_version"]) for e in before["events"]
    ]
    registered = next(e for e in after["events"] if e["type"] == "member.registered")
    assert registered["data"]["plan"] == "gold"
    consent = next(e for e in after["events"] if e["type"] == "member.consent_changed")
    assert consent["data"]["evidence"] == {"ip": "1.2.3.4"}
    async with api.client("read") as c:
        profile = (await c.get(f"/v1/members/{KATE}")).json()
    assert profile["member_id"] == new_id
    assert {k: v for k, v in profile.items() if k != "member_id"} == {
        k: v for k, v in profile_before.items() if k != "member_id"
    }
    async with api.client("admin") as c:
        export = (await c.get(f"/v1/members/{KATE}/export")).text
    assert KATE in export and KATE_PHONE in export  # still decryptable
    assert await api.store_id(OLD_DEVICE) == new_id  # the merged member's id too
    instance = await pool.fetchrow("SELECT * FROM journey_instances")
    assert instance["member_id"] == new_id
    assert instance["workflow_id"] == f"journey/cart_recovery/{new_id}/cart-1"

    # New events sent with the client's id land on the new id.
    async with api.client("ingest") as c:
        r = await c.post("/v1/events", json={"events": [event("page.viewed", id=KATE)]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["member_id"] == new_id
    assert KATE not in await everything_in_clear(pool)

    # A link sent before the re-key names the old id: the click lands on the new id.
    token = LinkSigner(api.settings.resolved_secret(), api.url).token(
        "click",
        delivery_id=DID,
        member_id=KATE,
        channel="email",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
        url="https://shop.example/p/1",
    )
    async with api.client(None) as c:
        r = await c.get(f"/t/c/{token}")
        assert r.status_code == 302, r.text
    assert "message.clicked" in [e["type"] for e in (await timeline(api, KATE))["events"]]
    assert KATE not in await everything_in_clear(pool)

    # A second run has nothing to do.
    again = await rekey_all(api.store, keyring)
    assert (again.rekeyed, again.skipped_running, again.legacy) == (0, 0, 0)
    assert again.already_opaque == (await count(pool)).already_opaque


async def test_a_member_with_a_running_journey_is_skipped_until_it_ends(api: Api) -> None:
    pool = api.store.pool
    keyring = Keyring(api.settings.resolved_secret())
    await legacy_member(api, RON)
    await legacy_member(api, "u-17")
    wid = f"journey/cart_recovery/{RON}"
    await pool.execute(
        "INSERT INTO journey_instances (workflow_id, journey, member_id, running) "
        "VALUES ($1, 'cart_recovery', $2, true)",
        wid,
        RON,
    )
    assert (await count(pool)).skipped_running == 1
    first = await rekey_all(api.store, keyring)
    assert (first.rekeyed, first.skipped_running, first.legacy) == (1, 1, 1)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", f"member-{RON}")
    assert await api.store_id("u-17") != "u-17"

    await pool.execute("UPDATE journey_instances SET running = false")
    second = await rekey_all(api.store, keyring)
    assert (second.rekeyed, second.skipped_running, second.legacy) == (1, 0, 0)
    assert RON not in await everything_in_clear(pool)


async def test_erasing_a_legacy_member_leaves_its_id_nowhere(api: Api) -> None:
    pool = api.store.pool
    await build_legacy_store(api)
    async with api.client("admin") as c:
        r = await c.delete(f"/v1/members/{KATE}")
        assert r.status_code == 200, r.text
        body = r.json()
    assert is_minted(body["member_id"])
    assert all(is_minted(i) for i in body["erased_ids"])
    clear = await everything_in_clear(pool)
    for secret in (KATE, OLD_DEVICE, KATE_PHONE):
        assert secret not in clear
    # The erased user ids stay refused.
    async with api.client("ingest") as c:
        for name in (KATE, OLD_DEVICE):
            r = await c.post("/v1/events", json={"events": [event(id=name)]})
            assert r.status_code == 422, r.text
    assert KATE not in await everything_in_clear(pool)


async def test_the_events_table_stays_append_only(store: PostgresEventStore) -> None:
    await store.append("member-kate@example.com", [NewEvent("page.viewed", {})], ANY)
    refused = pytest.raises(asyncpg.RestrictViolationError, match="append-only")
    pool = store.pool
    with refused:
        await pool.execute("UPDATE events SET stream_id = 'member-x'")
    with refused:
        await pool.execute("DELETE FROM events")
    with refused:
        await pool.execute("TRUNCATE events")
    new = "0123456789ab4def8123456789abcdef"
    async with pool.acquire() as conn:
        for settings, statement in [
            # the setting names no minted id
            ("kate@example.com", "UPDATE events SET stream_id = 'member-x'"),
            # a stream id other than the member's new one
            (new, "UPDATE events SET stream_id = 'member-someone'"),
            # a column the rewrite never changes
            (new, "UPDATE events SET type = 'order.placed'"),
            (new, "DELETE FROM events"),
        ]:
            with refused:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT set_config('journeyman.rekey_from', 'kate@example.com', true), "
                        "set_config('journeyman.rekey_to', $1, true)",
                        settings,
                    )
                    await conn.execute(statement)
        # outside that transaction the setting is gone
        with refused:
            await conn.execute(f"UPDATE events SET stream_id = 'member-{new}'")
    assert await pool.fetchval("SELECT stream_id FROM events") == "member-kate@example.com"


async def rekey_cli(database_url: str, tmp_path: Path, *args: str) -> tuple[dict, str]:
    env = {
        **os.environ,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_SECRET_KEY": SECRET,
        "JOURNEYMAN_DATA_DIR": str(tmp_path),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "journeyman"), "members", "rekey", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


async def test_the_command_counts_then_rekeys(api: Api, database_url: str, tmp_path: Path) -> None:
    pool = api.store.pool
    await legacy_member(api, RON)
    await legacy_member(api, KATE)
    async with api.client("ingest") as c:  # one member with an engine-minted id
        r = await c.post("/v1/events", json={"events": [event(email="new@example.com")]})
        assert r.status_code == 200, r.text
    await pool.execute(
        "INSERT INTO journey_instances (workflow_id, journey, member_id, pending) "
        "VALUES ($1, 'cart_recovery', $2, true)",
        f"journey/cart_recovery/{RON}",
        RON,
    )
    out, err = await rekey_cli(database_url, tmp_path, "--dry-run")
    assert out == {
        "to_rekey": 1,
        "skipped_running": 1,
        "skipped_unrouted": 0,
        "already_opaque": 1,
    }
    assert "would re-key 1 member(s)" in err
    assert await pool.fetchval("SELECT count(*) FROM members WHERE member_id = $1", KATE) == 1

    out, err = await rekey_cli(database_url, tmp_path)
    assert out == {
        "rekeyed": 1,
        "skipped_running": 1,
        "skipped_unrouted": 0,
        "already_opaque": 1,
        "legacy_left": 1,
    }
    assert "re-keyed 1 member(s); skipped 1" in err
    assert KATE not in await everything_in_clear(pool)


def pause_first_call(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    gate: Callable[[], Awaitable[None]],
    *,
    after: bool = False,
) -> None:
    """Make the first call of `resolver.<name>` await `gate()` before (or `after`) running."""
    real = getattr(resolver_module, name)
    calls = 0

    async def paused(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1 and not after:
            await gate()
        result = await real(*args, **kwargs)
        if calls == 1 and after:
            await gate()
        return result

    monkeypatch.setattr(resolver_module, name, paused)


@pytest.mark.parametrize(
    ("paused", "waits"),
    [
        # the batch has locked the member (FOR KEY SHARE) in its transaction: the re-key
        # waits for it
        ("_lock_and_check", True),
        # the batch read the member before the re-key and locks it after: it retries
        ("_load_members", False),
    ],
)
async def test_an_event_arriving_mid_rekey_lands_on_the_new_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, paused: str, waits: bool
) -> None:
    pool = api.store.pool
    keyring = Keyring(api.settings.resolved_secret())
    ingestor = Ingestor(api.store, api.settings)
    await legacy_member(api, KATE)
    inside, release = asyncio.Event(), asyncio.Event()

    async def gate() -> None:
        inside.set()
        await release.wait()

    pause_first_call(monkeypatch, paused, gate, after=waits)
    batch = asyncio.create_task(ingestor.ingest_raw([event("order.placed", id=KATE)]))
    await asyncio.wait_for(inside.wait(), 10)
    rekey = asyncio.create_task(rekey_member(api.store, keyring, KATE))
    if waits:
        await asyncio.sleep(0.5)
        assert not rekey.done(), "the re-key must wait for the batch that holds the member"
    else:
        await asyncio.wait_for(asyncio.shield(rekey), 30)
    release.set()
    result = await asyncio.wait_for(batch, 30)
    outcome, new_id = await asyncio.wait_for(rekey, 30)
    assert outcome == "rekeyed" and result.accepted == 1, result
    if not waits:
        assert result.results[0].member_id == new_id
    types = [e.type for e in await api.store.read_stream(f"member-{new_id}")]
    assert types == ["page.viewed", "order.placed"]
    assert not await pool.fetchval(
        "SELECT count(*) FROM events WHERE stream_id = $1", f"member-{KATE}"
    )


async def test_a_member_with_events_the_dispatcher_has_not_routed_waits(api: Api) -> None:
    """The dispatcher may be routing them under the old id right now: the member is left
    for a later run, once the dispatcher's checkpoint has passed its events."""
    from journeyman.engine.routing.dispatcher import SUBSCRIPTION

    assert SUBSCRIPTION == DISPATCHER
    pool = api.store.pool
    keyring = Keyring(api.settings.resolved_secret())
    await legacy_member(api, KATE)
    await api.store.save_checkpoint(SUBSCRIPTION, START)
    assert (await count(pool)).skipped_unrouted == 1
    result = await rekey_all(api.store, keyring)
    assert (result.rekeyed, result.skipped_unrouted, result.legacy) == (0, 1, 1)

    await api.store.save_checkpoint(SUBSCRIPTION, await api.store.head())
    result = await rekey_all(api.store, keyring)
    assert (result.rekeyed, result.skipped_unrouted, result.legacy) == (1, 0, 0)
    assert KATE not in await everything_in_clear(pool)


async def test_erasure_ends_a_legacy_members_journey_then_rekeys_it(
    api: Api,
    temporal_env,  # type: ignore[no-untyped-def]
) -> None:
    pool = api.store.pool
    await build_legacy_store(api)
    client = temporal_env.client
    queue = f"rekey-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Sleeper]):
        handle = await client.start_workflow(
            Sleeper.run, KATE, id=f"journey/sleeper/{KATE}/{queue}", task_queue=queue
        )
        await mark_started(
            pool,
            workflow_id=handle.id,
            journey="sleeper",
            member_id=KATE,
            key=None,
            entry_id=handle.first_execution_run_id,
            new_run=True,
        )
        # Without Temporal the journey is left running: the id stays until it ends.
        kept = await erase_member(api.store, KATE, settings=api.settings)
        assert kept.journeys_left_running == [handle.id] and kept.ids_in_clear == 1
        assert kept.member_id == KATE

        result = await erase_member(api.store, KATE, settings=api.settings, temporal=client)
        assert result.journeys_terminated == [handle.id]
        assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert result.ids_in_clear == 0 and is_minted(result.member_id)
    row = await pool.fetchrow("SELECT * FROM journey_instances WHERE journey = 'sleeper'")
    assert row["member_id"] == result.member_id and not row["running"]
    assert row["workflow_id"] == f"journey/sleeper/{result.member_id}/{queue}"
    for secret in (KATE, OLD_DEVICE, KATE_PHONE):
        assert secret not in await everything_in_clear(pool)


def test_ids_are_replaced_only_where_they_name_the_member() -> None:
    new = "0123456789ab4def8123456789abcdef"
    long = _Ids("customer-1", new)
    assert long.id("signup/customer-1") == f"signup/{new}"
    assert long.id("order-customer-12") == "order-customer-12"
    assert long.value({"note": "customer-1 and customer-12"}) == {"note": f"{new} and customer-12"}
    short = _Ids("42", new)
    assert short.id("member.erased:42") == f"member.erased:{new}"
    assert short.id("segment.entered/vip/3/42") == f"segment.entered/vip/3/{new}"
    assert short.id("order-42") == "order-42"
    assert short.value({"member_id": "42", "sku": "42", "url": "/p/42"}) == {
        "member_id": new,
        "sku": "42",
        "url": "/p/42",
    }
    assert short.value({"workflow_id": "journey/cart/42/c-42"}) == {
        "workflow_id": f"journey/cart/{new}/c-42"
    }
    assert short.value({"$sealed": "42"}) == {"$sealed": "42"}
