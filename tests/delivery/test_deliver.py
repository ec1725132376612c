"""The deliver path end to end against the real SMTP and Twilio peers: render, claim, send,
record; settled deliveries are returned, never re-sent; fallback and error actions."""

from __future__ import annotations

import pytest
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.contracts.delivery import delivery_id
from journeyman.engine.delivery import claims
from journeyman.event_store import NewEvent
from temporalio.exceptions import ApplicationError

from .delivery_testkit import (
    add_member,
    deliverer,
    email_channel,
    ledger_row,
    make_settings,
    request,
    sms_channel,
    types_of,
)


@pytest.fixture
async def smtp():
    async with SmtpPeer() as peer:
        yield peer


@pytest.fixture
async def twilio():
    async with TwilioPeer() as peer:
        yield peer


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


async def test_email_is_rendered_signed_sent_and_recorded(store, settings, smtp) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"email": email_channel(smtp)})
    req = request(member, ["email"])
    outcome = await d.deliver(req)
    assert outcome.status == "sent" and outcome.channel == "email"
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "You left something in your cart"
    html = msg.get_body(("html",)).get_content()
    assert "Teapot" in html
    assert "/t/c/" in html and "/t/o/" in html  # tracked link and open pixel
    assert "https://shop.example/cart/c1" not in html  # rewritten into a tracking link
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8787/u/")
    assert await types_of(store, member) == ["member.registered", "message.sent"]
    (sent,) = await sent_events(store, member)
    assert sent.data["entry_id"] == req.entry_id  # reports credit the send to its entry
    row = await ledger_row(store, outcome.delivery_id)
    assert row is not None and row["status"] == "sent" and row["channel"] == "email"
    # a retry of the same request returns the recorded outcome and sends nothing
    again = await d.deliver(req)
    assert again == outcome and len(smtp.messages) == 1


async def test_locale_falls_back_from_region_to_language(store, settings, smtp) -> None:
    member = await add_member(store, settings, locale="fr-CA")
    d = deliverer(store, settings, {"email": email_channel(smtp)})
    assert (await d.deliver(request(member, ["email"]))).status == "sent"
    assert smtp.messages[0]["Subject"] == "Vous avez oublié quelque chose dans votre panier"


async def test_a_claim_without_outcome_is_in_doubt_and_not_resent(store, settings, smtp) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"email": email_channel(smtp)})
    req = request(member, ["email"])
    did = delivery_id(req)
    # an earlier attempt claimed and vanished (crashed after calling the provider)
    await store.append(claims.stream_of(did), [claims.claimed(did, "email", "wf")])
    outcome = await d.deliver(req)
    assert outcome.status == "in_doubt" and outcome.channel == "email"
    assert smtp.attempts == 0
    assert "message.in_doubt" in await types_of(store, member)
    assert (await d.deliver(req)).status == "in_doubt"
    assert smtp.attempts == 0


async def test_transient_errors_release_the_claim_and_go_back_to_temporal(
    store, settings, twilio
) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    req = request(member, ["sms"])
    twilio.rate_limit(times=1, retry_after=7)
    with pytest.raises(ApplicationError) as info:
        await d.deliver(req)
    assert info.value.type == "TransientError" and not info.value.non_retryable
    assert info.value.next_retry_delay is not None
    assert info.value.next_retry_delay.total_seconds() == 7
    state = await claims.load(store, delivery_id(req))
    assert state.claim is None and state.outcome is None
    outcome = await d.deliver(req)  # Temporal's retry
    assert outcome.status == "sent"
    assert twilio.requests == 2 and twilio.accepted == 1


async def sent_events(store, member: str) -> list:
    return [e for e in await store.read_stream(f"member-{member}") if e.type == "message.sent"]


async def test_500_without_storing_is_reconciled_and_sent_again_once(
    store, settings, twilio
) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    req = request(member, ["sms"])
    twilio.server_error(times=1)  # 500, nothing stored
    with pytest.raises(ApplicationError) as first:
        await d.deliver(req)
    assert first.value.type == "ReconcilePending" and not first.value.non_retryable
    state = await claims.load(store, delivery_id(req))
    assert state.claim is not None and state.uncertain and state.outcome is None
    with pytest.raises(ApplicationError) as second:  # Temporal's retry: look it up
        await d.deliver(req)
    assert second.value.type == "NotAtProvider"
    assert twilio.lookups == 1 and twilio.requests == 1  # looked up, not re-sent yet
    outcome = await d.deliver(req)  # the next retry claims again and sends
    assert outcome.status == "sent"
    assert twilio.requests == 2 and twilio.accepted == 1
    [sent] = await sent_events(store, member)
    assert sent.data["provider_message_id"] == twilio.messages[0].sid
    assert "reconciled" not in sent.data
    assert (await d.deliver(req)) == outcome and twilio.requests == 2


async def test_500_after_storing_is_found_and_never_sent_twice(store, settings, twilio) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    req = request(member, ["sms"])
    twilio.accept_then_fail(times=1)  # Twilio took it, then answered 500
    with pytest.raises(ApplicationError):
        await d.deliver(req)
    outcome = await d.deliver(req)
    assert outcome.status == "sent" and outcome.channel == "sms"
    assert twilio.requests == 1 and twilio.accepted == 1 and twilio.lookups == 1
    [sent] = await sent_events(store, member)
    assert sent.data["provider_message_id"] == twilio.messages[0].sid
    assert sent.data["reconciled"] is True
    row = await ledger_row(store, outcome.delivery_id)
    assert row is not None and row["status"] == "sent"
    assert row["provider_message_id"] == twilio.messages[0].sid
    assert (await d.deliver(req)) == outcome and twilio.lookups == 1


async def test_lookups_that_cannot_tell_end_in_doubt_after_the_bound(
    store, tmp_path, twilio
) -> None:
    settings = make_settings(tmp_path, reconcile_attempts=2)
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    req = request(member, ["sms"])
    twilio.accept_then_fail(times=1)
    twilio.fail_lookups(times=5, status=503)
    with pytest.raises(ApplicationError):
        await d.deliver(req)
    with pytest.raises(ApplicationError) as pending:
        await d.deliver(req)
    assert pending.value.type == "ReconcilePending" and twilio.lookups == 1
    outcome = await d.deliver(req)
    assert outcome.status == "in_doubt" and twilio.lookups == 2
    assert twilio.requests == 1
    types = await types_of(store, member)
    assert "message.in_doubt" in types and "message.sent" not in types


async def test_a_provider_that_never_takes_it_fails_after_the_resends(
    store, tmp_path, twilio
) -> None:
    settings = make_settings(tmp_path, reconcile_resends=1)
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    req = request(member, ["sms"])
    twilio.server_error(times=10)
    for _ in range(3):  # send, look up (absent: send again), send
        with pytest.raises(ApplicationError):
            await d.deliver(req)
    outcome = await d.deliver(req)  # absent again: no more re-sends
    assert outcome.status == "failed" and "never took the message" in outcome.reason
    assert twilio.requests == 2 and twilio.accepted == 0 and twilio.lookups == 2


async def test_an_abandoned_claim_is_resent_only_after_the_grace(store, tmp_path, twilio) -> None:
    import datetime as dt

    settings = make_settings(tmp_path)
    member = await add_member(store, settings)
    req = request(member, ["sms"])
    did = delivery_id(req)
    # an attempt claimed and vanished without any answer: it may still be in flight
    await store.append(claims.stream_of(did), [claims.claimed(did, "sms", "wf")])
    d = deliverer(store, settings, {"sms": sms_channel(twilio)})
    with pytest.raises(ApplicationError) as early:
        await d.deliver(req)
    assert early.value.type == "ReconcilePending" and early.value.next_retry_delay is not None
    assert twilio.lookups == 1 and twilio.requests == 0
    later = dt.datetime.now(dt.UTC) + settings.delivery.reconcile_grace
    d = deliverer(store, settings, {"sms": sms_channel(twilio)}, clock=lambda: later)
    with pytest.raises(ApplicationError) as absent:
        await d.deliver(req)
    assert absent.value.type == "NotAtProvider"
    assert (await d.deliver(req)).status == "sent"
    assert twilio.requests == 1 and twilio.accepted == 1


async def test_invalid_number_falls_back_to_email_and_suppresses_sms(
    store, settings, smtp, twilio
) -> None:
    member = await add_member(store, settings, phone="+15005550001")  # Twilio: invalid
    d = deliverer(store, settings, {"email": email_channel(smtp), "sms": sms_channel(twilio)})
    outcome = await d.deliver(
        request(
            member, ["sms", "email"], template="cart_coupon", coupon_code="C10", coupon_percent=10
        )
    )
    assert outcome.status == "sent" and outcome.channel == "email"
    assert twilio.requests == 1 and twilio.accepted == 0
    assert len(smtp.messages) == 1
    types = await types_of(store, member)
    assert types[1:] == ["message.bounced", "message.failed", "message.sent"]
    # the next send skips SMS at once (the block holds until the profile has folded it)
    second = await d.deliver(request(member, ["sms", "email"], step="2:other"))
    assert second.channel == "email" and twilio.requests == 1


async def test_provider_unsubscribed_turns_consent_off(store, settings, smtp, twilio) -> None:
    from .delivery_testkit import project

    member = await add_member(store, settings, phone="+15005550004")  # Twilio: 21610
    d = deliverer(store, settings, {"email": email_channel(smtp), "sms": sms_channel(twilio)})
    first = await d.deliver(request(member, ["sms"]))
    assert first.status == "failed"
    await project(store, settings)
    from journeyman.engine.profiles import get_profile

    profile = await get_profile(store.pool, member, settings=settings)
    assert profile is not None and profile.consent["sms:marketing"] is False
    second = await d.deliver(request(member, ["sms"], step="2:x"))
    assert second.status == "suppressed" and "no consent" in second.reason
    assert twilio.requests == 1


async def test_misconfigured_channel_is_paused_and_the_member_not_blamed(
    store, settings, smtp, twilio
) -> None:
    member = await add_member(store, settings)
    bad = sms_channel(twilio, auth_token="wrong")
    d = deliverer(store, settings, {"sms": bad, "email": email_channel(smtp)})
    outcome = await d.deliver(request(member, ["sms", "email"]))
    assert outcome.status == "sent" and outcome.channel == "email"
    paused = await store.pool.fetchval("SELECT count(*) FROM channel_pauses WHERE channel='sms'")
    assert paused == 1
    # while paused, an SMS-only send waits for the channel instead of failing the member
    waiting = await d.deliver(request(member, ["sms"], step="2:sms"))
    assert waiting.status == "deferred" and waiting.defer_until is not None
    assert twilio.requests == 1
    suppressed_for = await store.pool.fetchval(
        "SELECT count(*) FROM delivery_blocks WHERE member_id = $1", member
    )
    assert suppressed_for == 0


async def test_missing_contact_point_and_consent_suppress(store, settings, smtp, twilio) -> None:
    member = await add_member(store, settings, email=None, consent={"sms:marketing": False})
    d = deliverer(store, settings, {"email": email_channel(smtp), "sms": sms_channel(twilio)})
    outcome = await d.deliver(request(member, ["sms", "email"]))
    assert outcome.status == "suppressed"
    assert "no consent for sms:marketing" in outcome.reason
    assert "no email contact point" in outcome.reason
    assert (await types_of(store, member))[-1] == "message.suppressed"
    # transactional messages do not need marketing consent
    tx = await d.deliver(request(member, ["sms"], step="2:tx", purpose="transactional"))
    assert tx.status == "sent" and twilio.accepted == 1


async def test_erased_member_is_suppressed(store, settings, smtp) -> None:
    from .delivery_testkit import project

    member = await add_member(store, settings)
    await store.append(f"member-{member}", [NewEvent("member.erased", {})])
    await project(store, settings)
    d = deliverer(store, settings, {"email": email_channel(smtp)})
    outcome = await d.deliver(request(member, ["email"]))
    assert outcome.status == "suppressed" and outcome.reason == "member erased"
    assert smtp.attempts == 0


async def test_routed_to_the_channel_queue_when_channel_workers_run(store, settings, smtp) -> None:
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"email": email_channel(smtp)}, channel_queues=True)
    outcome = await d.deliver(request(member, ["email"]))
    assert outcome.status == "routed" and outcome.task_queue == "journeyman-channel-email"
    assert smtp.attempts == 0
