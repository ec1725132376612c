"""Erasure: crypto-shredding over the real API, read back from the raw tables."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from journeyman.engine.activities.instances import mark_started
from journeyman.engine.analytics.report import journey_stats
from journeyman.engine.identity import get_contact_points
from journeyman.engine.identity.crypto import CryptoError, Keyring, load_data_keys
from journeyman.engine.privacy import SEALED, erase_member
from journeyman.engine.privacy.fields import open_field
from journeyman.engine.profiles import get_profile
from journeyman.event_store import ANY, NewEvent
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.ingestion.helpers import T0, event

from .conftest import Api
from .sleeper import Sleeper

EMAIL = "ann.erasure@example.com"
PHONE = "+14155550123"
IP = "203.0.113.77"


async def seed_member(api: Api, member_id: str = "m-erase") -> str:
    """A member with contact points, orders, consent with evidence and a journey funnel,
    named `member_id` by the client; returns the store's id of the member."""
    async with api.client("ingest") as c:
        r = await c.post(
            "/v1/events",
            json={
                "events": [
                    event(
                        "member.registered",
                        id=member_id,
                        email=EMAIL,
                        phone=PHONE,
                        properties={"timezone": "Europe/Paris"},
                    ),
                    event("order.placed", id=member_id, properties={"total": 42.5}),
                    event("order.placed", id=member_id, properties={"total": 7.5}),
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 3
        r = await c.put(
            f"/v1/members/{member_id}/consent",
            json={
                "changes": [{"channel": "sms", "purpose": "marketing", "granted": True}],
                "source": "signup_form",
                "evidence": {"ip": IP, "form": "footer"},
            },
        )
        assert r.status_code == 200, r.text
    store_id = await api.store_id(member_id)
    entry = uuid.uuid4().hex
    await api.store.append(
        f"member-{store_id}",
        [
            NewEvent(
                "journey.entered",
                {"journey": "welcome", "entry_id": entry, "workflow_id": "w1", "variant": "a"},
            ),
            NewEvent(
                "message.sent",
                {"journey": "welcome", "entry_id": entry, "delivery_id": "d1", "channel": "email"},
            ),
        ],
        ANY,
    )
    await api.project()
    return store_id


async def sealed_evidence(api: Api, member_id: str) -> tuple[str, dict]:
    row = await api.store.pool.fetchrow(
        "SELECT event_id, data FROM events WHERE stream_id = $1 AND type = "
        "'member.consent_changed'",
        f"member-{member_id}",
    )
    import json

    data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
    return row["event_id"], data["evidence"]


async def test_erasure_shreds_raw_rows_and_keeps_counts(api: Api) -> None:
    pool = api.store.pool
    keyring = Keyring(api.settings.resolved_secret())
    mid = await seed_member(api)
    stats_before = [repr(s) for s in await journey_stats(pool)]
    assert stats_before and "entered=1" in stats_before[0], stats_before
    events_before = await pool.fetchval("SELECT count(*) FROM events")

    # Before: the raw rows decrypt with the member's key.
    event_id, sealed = await sealed_evidence(api, mid)
    assert set(sealed) == {SEALED} and IP not in str(sealed)
    keys = await load_data_keys(pool, keyring, [mid])
    assert open_field(sealed, keys[mid], event_id, "evidence")["ip"] == IP
    alias_rows = await pool.fetch(
        "SELECT kind, value_enc FROM member_aliases WHERE member_id = $1", mid
    )
    assert {r["kind"] for r in alias_rows} == {"email", "phone", "user_id"}
    contacts = await get_contact_points(pool, mid, keyring=keyring)
    assert contacts["email"] == EMAIL and contacts["phone"] == PHONE

    async with api.client("admin") as c:
        r = await c.delete("/v1/members/m-erase")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["erased_ids"] == [mid] and body["already_erased"] is False

    # After: the key and aliases are gone, the events are all still there (+ member.erased).
    assert await pool.fetchval("SELECT count(*) FROM member_keys WHERE member_id=$1", mid) == 0
    # Only the user id's blind index stays, as a tombstone with no value.
    left = await pool.fetch("SELECT kind, value_enc FROM member_aliases WHERE member_id=$1", mid)
    assert [(r["kind"], bytes(r["value_enc"])) for r in left] == [("user_id", b"")]
    assert await pool.fetchval("SELECT count(*) FROM events") == events_before + 1
    assert await load_data_keys(pool, keyring, [mid]) == {}
    same_id, still_sealed = await sealed_evidence(api, mid)
    assert (same_id, still_sealed) == (event_id, sealed)  # the row itself never changed
    with pytest.raises(CryptoError):
        open_field(still_sealed, None, event_id, "evidence")
    # No other key opens it: not the secret-derived keys, not a new key for the same id.
    new_key, _ = keyring.new_data_key(mid)
    with pytest.raises(CryptoError):
        open_field(still_sealed, new_key, event_id, "evidence")
    # Nothing in the database holds the plain values any more.
    dump = await pool.fetchval(
        "SELECT string_agg(t::text, ' ') FROM (SELECT data::text || metadata::text AS t "
        "FROM events UNION ALL SELECT row_to_json(p)::text FROM member_profiles p) x"
    )
    for secret in (EMAIL, PHONE, IP, base64.b64encode(EMAIL.encode()).decode()):
        assert secret not in dump
    assert (await get_contact_points(pool, mid, keyring=keyring))["email"] is None

    # Counts remain, personal profile fields do not.
    profile = await get_profile(pool, mid)
    assert profile is not None and profile.erased
    assert profile.order_count == 2 and profile.monetary_value == 50.0
    assert profile.timezone is None and profile.consent == {} and profile.traits == {}
    assert [repr(s) for s in await journey_stats(pool)] == stats_before

    # The same email later is a stranger: nothing links it to the erased member.
    async with api.client("ingest") as c:
        r = await c.post("/v1/events", json={"events": [event("page.viewed", email=EMAIL)]})
        assert r.json()["results"][0]["member_id"] != mid

    # Erasing again changes nothing and appends nothing.
    async with api.client("admin") as c:
        again = await c.delete("/v1/members/m-erase")
    assert again.status_code == 200 and again.json()["already_erased"] is True
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE type = 'member.erased' AND stream_id = $1",
            f"member-{mid}",
        )
        == 1
    )


async def test_erasure_needs_admin_and_a_known_member(api: Api) -> None:
    mid = await seed_member(api, "m-scope")
    for scope, status in (("read", 403), ("ingest", 403), (None, 401)):
        async with api.client(scope) as c:
            assert (await c.delete("/v1/members/m-scope")).status_code == status
    async with api.client("admin") as c:
        r = await c.delete("/v1/members/nobody-here")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    assert (
        await api.store.pool.fetchval("SELECT count(*) FROM member_keys WHERE member_id = $1", mid)
        == 1
    )


async def test_erasure_terminates_running_journeys(api: Api, temporal_env) -> None:  # type: ignore[no-untyped-def]
    mid = await seed_member(api, "m-journey")
    queue = f"privacy-{uuid.uuid4().hex[:8]}"
    client = temporal_env.client
    async with Worker(client, task_queue=queue, workflows=[Sleeper]):
        handle = await client.start_workflow(
            Sleeper.run, "m-journey", id=f"journey/sleeper/m-journey/{queue}", task_queue=queue
        )
        await mark_started(
            api.store.pool,
            workflow_id=handle.id,
            journey="sleeper",
            member_id=mid,
            key=None,
            entry_id=handle.first_execution_run_id,
            new_run=True,
        )
        result = await erase_member(api.store, "m-journey", settings=api.settings, temporal=client)
        assert result.journeys_terminated == [handle.id]
        assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    running = await api.store.pool.fetchval(
        "SELECT running FROM journey_instances WHERE workflow_id = $1", handle.id
    )
    assert running is False


async def test_erased_member_is_never_sent_to(api: Api) -> None:
    """The delivery policy refuses an erased member, even through a member-id channel."""
    from journeyman.engine.contracts.delivery import SendRequest
    from journeyman.engine.delivery.workers import build_deliverer

    mid = await seed_member(api, "m-nosend")
    async with api.client("admin") as c:
        assert (await c.delete("/v1/members/m-nosend")).status_code == 200
    deliverer = build_deliverer(api.store, api.settings)
    outcome = await deliverer.deliver(
        SendRequest(
            journey="welcome",
            member_id=mid,
            workflow_id="journey/welcome/m-nosend",
            entry_id="e1",
            step="welcome",
            channels=["email", "sms", "outbox"],
            template="welcome",
            purpose="transactional",
        )
    )
    assert outcome.status == "suppressed" and outcome.reason == "member erased"
    assert T0 < dt.datetime.now(dt.UTC)


async def test_no_new_events_for_an_erased_member(api: Api) -> None:
    """After erasure, new events naming the member are refused (storing them would start a
    new record of the person); an event stored before and sent again is still a duplicate."""
    before = event("page.viewed", id="m-gone", properties={"url": "/a"})
    async with api.client("ingest") as c:
        assert (await c.post("/v1/events", json={"events": [before]})).json()["accepted"] == 1
    async with api.client("admin") as c:
        assert (await c.delete("/v1/members/m-gone")).status_code == 200
    after = event("member.registered", id="m-gone", email="back@example.com")
    other = event("page.viewed", id="m-still-here")
    async with api.client("ingest") as c:
        body = (await c.post("/v1/events", json={"events": [after, before, other]})).json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["rejected", "duplicate", "accepted"]
    assert body["results"][0]["errors"][0]["field"] == "events[0].member.id"
    assert "erased" in body["results"][0]["errors"][0]["reason"]
    gone = body["results"][1]["member_id"]
    stream = [e.type for e in await api.store.read_stream(f"member-{gone}")]
    assert "member.registered" not in stream
    assert (
        await api.store.pool.fetchval(
            "SELECT count(*) FROM events WHERE data::text LIKE '%back@example.com%'"
        )
        == 0
    )
