"""Consent per channel and purpose: events with source and time, the profile fold, and a
withdrawal between a journey's start and its send (real deliver on Temporal)."""

from __future__ import annotations

import asyncio
import uuid

from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput, JourneyResult
from journeyman.engine.privacy import ConsentUpdate, change_consent
from journeyman.workflows.cart_recovery import CartRecovery

from tests.delivery.delivery_testkit import add_member, make_settings
from tests.delivery.test_journey_delivery import cart_member_id, delivery_workers, make
from tests.delivery.test_journey_delivery import peers as peers  # the fixture
from tests.ingestion.helpers import event

from .conftest import Api


async def test_consent_changes_are_events_folded_into_the_profile(api: Api) -> None:
    async with api.client("ingest") as c:
        r = await c.post("/v1/events", json={"events": [event("member.registered", id="m-c")]})
        assert r.json()["accepted"] == 1
        r = await c.put(
            "/v1/members/m-c/consent",
            json={
                "changes": [
                    {"channel": "email", "purpose": "marketing", "granted": False},
                    {"channel": "sms", "purpose": "transactional", "granted": True},
                ],
                "source": "preference_center",
                "occurred_at": "2026-01-02T10:00:00+00:00",
            },
        )
        assert r.status_code == 200, r.text
        assert [x["status"] for x in r.json()["results"]] == ["withdrawn", "granted"]
        # bad input names the field; unknown members and wrong scopes are refused
        bad = await c.put(
            "/v1/members/m-c/consent",
            json={"changes": [{"channel": "email", "purpose": "gossip", "granted": True}]},
        )
        assert bad.status_code == 422 and "purpose" in bad.text
        missing = await c.put(
            "/v1/members/nobody/consent",
            json={"changes": [{"channel": "email", "granted": True}]},
        )
        assert missing.status_code == 404
    async with api.client("read") as c:
        denied = await c.put(
            "/v1/members/m-c/consent", json={"changes": [{"channel": "email", "granted": True}]}
        )
        assert denied.status_code == 403
    changes = [
        e
        for e in await api.store.read_stream(f"member-{await api.store_id('m-c')}")
        if e.type == "member.consent_changed"
    ]
    assert [(e.data["channel"], e.data["purpose"], e.data["granted"]) for e in changes] == [
        ("email", "marketing", False),
        ("sms", "transactional", True),
    ]
    assert {e.data["source"] for e in changes} == {"preference_center"}
    assert {e.occurred_at.isoformat() for e in changes} == {"2026-01-02T10:00:00+00:00"}
    await api.project()
    async with api.client("read") as c:
        profile = (await c.get("/v1/members/m-c")).json()
    assert profile["consent"] == {"email:marketing": False, "sms:transactional": True}
    # granting again flips it back
    await change_consent(
        api.store,
        "m-c",
        ConsentUpdate.model_validate({"changes": [{"channel": "email", "granted": True}]}),
        settings=api.settings,
    )
    await api.project()
    async with api.client("read") as c:
        assert (await c.get("/v1/members/m-c")).json()["consent"]["email:marketing"] is True


async def test_consent_withdrawn_after_start_suppresses_the_send(
    temporal_env,
    store,
    tmp_path,
    peers,
) -> None:
    smtp, twilio = peers
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, member_id=cart_member_id())
    deliverer = make(store, settings, smtp, twilio)
    client = temporal_env.client
    spec = CartRecovery.__journey__
    async with delivery_workers(client, store, deliverer) as tq:
        trigger = JourneyEvent(
            position=1,
            type="cart.updated",
            data={"cart_id": "c1", "items": [{"name": "Teapot"}]},
            event_id=f"ev-{uuid.uuid4().hex}",
        )
        handle = await client.start_workflow(
            spec.name,
            JourneyInput(
                member_id=member,
                key="c1",
                trigger=trigger,
                settings=spec.resolve_settings(None).model_dump(mode="json"),
            ),
            id=spec.workflow_id(member, "c1"),
            task_queue=tq,
            result_type=JourneyResult,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[trigger],
        )
        # The journey has started (and is waiting out its quiet period) ...
        for _ in range(200):
            types = [e.type for e in await store.read_stream(f"member-{member}")]
            if "journey.entered" in types:
                break
            await asyncio.sleep(0.05)
        assert "journey.entered" in types and "message.sent" not in types
        # ... when the member withdraws marketing consent on both channels. The profile
        # projection is deliberately not run: the send must still see the withdrawal.
        await change_consent(
            store,
            member,
            ConsentUpdate.model_validate(
                {
                    "changes": [
                        {"channel": "email", "purpose": "marketing", "granted": False},
                        {"channel": "sms", "purpose": "marketing", "granted": False},
                    ],
                    "source": "preference_center",
                }
            ),
            settings=settings,
        )
        result = await handle.result()
    assert [s.status for s in result.sends] == ["suppressed", "suppressed"]
    assert smtp.messages == [] and twilio.accepted == 0
    events = await store.read_stream(f"member-{member}")
    suppressed = [e.data for e in events if e.type == "message.suppressed"]
    assert len(suppressed) == 2 and "message.sent" not in [e.type for e in events]
    assert all("consent" in str(d) for d in suppressed), suppressed
