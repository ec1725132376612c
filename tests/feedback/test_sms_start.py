"""SMS START: the consent events and the removal of the opt-out's block are one
transaction, and only the opt-out is lifted — a hard bounce's block stays."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from delivery.delivery_testkit import add_member, make_settings, request, sms_channel
from journeyman.channels import DeliveryEvent
from journeyman.channels.testing.peers import TwilioPeer
from journeyman.channels.testing.peers.twilio import error_body
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.delivery.feedback import Feedback
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.profiles import ProfileProjector, ProfileRow, get_profile
from journeyman.engine.profiles.fold import apply, combine
from journeyman.event_store import PostgresEventStore, RecordedEvent

PHONE = "+14155550123"


@dataclass
class Env:
    url: str
    store: PostgresEventStore
    settings: Any
    twilio: TwilioPeer
    feedback: Feedback
    deliverer: Deliverer


@pytest.fixture
async def env(store, tmp_path) -> AsyncIterator[Env]:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    app = create_app(settings, store, run_projector=False)
    async with TwilioPeer() as twilio, serve_in_background(app) as url:
        settings.delivery.public_url = url
        channels = {"sms": sms_channel(twilio, callback=f"{url}/webhooks/sms")}
        feedback = Feedback(store, channels, settings)
        app.state.feedback = feedback
        yield Env(
            url, store, settings, twilio, feedback, Deliverer(store, channels, settings=settings)
        )
        await channels["sms"].aclose()


async def _blocks(store: PostgresEventStore, member: str) -> set[tuple[str, str, str]]:
    rows = await store.pool.fetch(
        "SELECT channel, purpose, reason FROM delivery_blocks WHERE member_id = $1", member
    )
    return {(r["channel"], r["purpose"], r["reason"]) for r in rows}


async def _types(store: PostgresEventStore, member: str) -> list[str]:
    return [e.type for e in await store.read_stream(f"member-{member}")]


async def test_start_keeps_a_hard_bounce_block(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    # the provider refuses the number as invalid: a hard bounce blocks SMS to it
    env.twilio.fail_next(1, 400, error_body(400, 21211, "not a valid phone number"))
    bounced = await env.deliverer.deliver(request(member, ["sms"]))
    assert bounced.status == "failed"
    assert await _blocks(env.store, member) == {("sms", "*", "recipient invalid")}
    r = await env.twilio.send_inbound(f"{env.url}/webhooks/sms", from_=PHONE, body="START")
    assert r.status_code == 200
    assert (await _types(env.store, member))[-1] == "member.consent_changed"
    assert await _blocks(env.store, member) == {("sms", "*", "recipient invalid")}
    # and it still binds: the next SMS is not sent to the invalid number
    again = await env.deliverer.deliver(request(member, ["sms"], step="2:after-start"))
    assert again.status == "suppressed" and env.twilio.accepted == 0


async def _suppressed(env: Env, member: str) -> dict[str, str]:
    profile = await get_profile(env.store.pool, member, settings=env.settings)
    assert profile is not None
    return profile.suppressed


async def test_a_hard_bounce_survives_stop_then_start(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    inbound = f"{env.url}/webhooks/sms"
    env.twilio.fail_next(1, 400, error_body(400, 21211, "not a valid phone number"))
    assert (await env.deliverer.deliver(request(member, ["sms"]))).status == "failed"
    assert (await env.twilio.send_inbound(inbound, from_=PHONE, body="STOP")).status_code == 200
    assert await _blocks(env.store, member) == {
        ("sms", "*", "recipient invalid"),
        ("sms", "*", "stop"),
    }
    assert (await env.twilio.send_inbound(inbound, from_=PHONE, body="START")).status_code == 200
    # START lifted the opt-out only: the bounce's block is still there, and still binds
    # before the profile has folded any of it
    assert await _blocks(env.store, member) == {("sms", "*", "recipient invalid")}
    early = await env.deliverer.deliver(request(member, ["sms"], step="2:before-profile"))
    assert early.status == "suppressed" and env.twilio.accepted == 0
    # the profile folds bounce, STOP and START into "suppressed for the bounce"
    projector = ProfileProjector(env.store, env.settings)
    await projector.run_until_caught_up()
    assert await _suppressed(env, member) == {"sms": "bounce"}
    late = await env.deliverer.deliver(request(member, ["sms"], step="3:after-profile"))
    assert late.status == "suppressed" and env.twilio.accepted == 0
    # a rebuild of the projection from the store gives the same answer
    await projector.rebuild()
    assert await _suppressed(env, member) == {"sms": "bounce"}


async def test_start_lifts_the_stop_block(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    inbound = f"{env.url}/webhooks/sms"
    assert (await env.twilio.send_inbound(inbound, from_=PHONE, body="STOP")).status_code == 200
    assert await _blocks(env.store, member) == {("sms", "*", "stop")}
    assert (await env.twilio.send_inbound(inbound, from_=PHONE, body="START")).status_code == 200
    assert await _blocks(env.store, member) == set()


async def test_a_failure_between_consent_and_unblock_leaves_no_half_state(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    inbound = f"{env.url}/webhooks/sms"
    assert (await env.twilio.send_inbound(inbound, from_=PHONE, body="STOP")).status_code == 200
    before = await _types(env.store, member)
    # the removal of the block fails after the consent events were written
    await env.store.pool.execute(
        """
        CREATE FUNCTION refuse_unblock() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'unblock refused'; END $$;
        CREATE TRIGGER refuse_unblock BEFORE DELETE ON delivery_blocks
        FOR EACH ROW EXECUTE FUNCTION refuse_unblock();
        """
    )
    start = DeliveryEvent(
        kind="inbound",
        channel="sms",
        provider_message_id="SMstart1",
        occurred_at=dt.datetime.now(dt.UTC),
        contact=PHONE,
        text="START",
    )
    try:
        with pytest.raises(Exception, match="unblock refused"):
            await env.feedback.apply(start)
        assert await _types(env.store, member) == before  # no consent without the unblock
        assert await _blocks(env.store, member) == {("sms", "*", "stop")}
    finally:
        await env.store.pool.execute(
            "DROP TRIGGER refuse_unblock ON delivery_blocks; DROP FUNCTION refuse_unblock()"
        )
    # the provider's retry of the same START then applies all of it
    assert await env.feedback.apply(start) == 2
    assert (await _types(env.store, member))[-2:] == ["member.consent_changed"] * 2
    assert await _blocks(env.store, member) == set()


def _event(n: int, type_: str, **data: Any) -> RecordedEvent:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n)
    return RecordedEvent(n, n, "member-m", n, f"e{n}", type_, data, {}, at, at)


STOP = ("member.unsubscribed", {"channel": "sms", "purpose": "marketing", "reason": "stop"})
BOUNCE = ("message.bounced", {"channel": "sms", "bounce_type": "hard"})
START = (
    "member.consent_changed",
    {"channel": "sms", "purpose": "marketing", "granted": True, "reason": "start"},
)


@pytest.mark.parametrize(
    "order",
    [(BOUNCE, STOP, START), (STOP, BOUNCE, START), (STOP, START, BOUNCE)],
    ids=["bounce-stop-start", "stop-bounce-start", "stop-start-bounce"],
)
def test_the_profile_keeps_a_bounce_whatever_the_order(order: tuple) -> None:
    row = ProfileRow("m")
    for n, (type_, data) in enumerate(order, 1):
        apply(row, _event(n, type_, **data), frozenset())
    assert row.suppressed == {"sms": "bounce"}


def test_a_merge_keeps_the_bounce_under_a_stop() -> None:
    survivor, merged = ProfileRow("a"), ProfileRow("b")
    apply(survivor, _event(1, STOP[0], **STOP[1]), frozenset())
    apply(merged, _event(2, BOUNCE[0], **BOUNCE[1]), frozenset())
    combine(survivor, merged)
    apply(survivor, _event(3, START[0], **START[1]), frozenset())
    assert survivor.suppressed == {"sms": "bounce"}
