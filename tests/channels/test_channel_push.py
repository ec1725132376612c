"""Web Push against a push service that checks VAPID and decrypts; FCM v1 against a local
FCM endpoint with its own OAuth token endpoint."""

from __future__ import annotations

import json

import pytest
from journeyman.channels import (
    AmbiguousError,
    ChannelMisconfigured,
    ContentRejected,
    Message,
    RecipientGone,
    RecipientInvalid,
    TransientError,
)
from journeyman.channels.fcm import FcmChannel
from journeyman.channels.testing.peers import FcmPeer, WebPushPeer, closed_port, generate_vapid_keys
from journeyman.channels.webpush import WebPushChannel

VAPID_PEM, VAPID_PUBLIC = generate_vapid_keys()


@pytest.fixture
async def push():
    async with WebPushPeer(application_server_key=VAPID_PUBLIC) as peer:
        yield peer


def webpush(**overrides) -> WebPushChannel:
    config = {"vapid_private_key": VAPID_PEM, "vapid_subject": "mailto:ops@shop.test"}
    return WebPushChannel({**config, **overrides})


async def test_payload_is_encrypted_for_the_subscription(push: WebPushPeer) -> None:
    subscription = push.subscribe()
    message = Message(to=json.dumps(subscription), title="Cart", text="3 items", data={"n": 3})
    result = await webpush().send(message, "k")
    [received] = push.received
    assert received.json() == {"title": "Cart", "body": "3 items", "data": {"n": 3}}
    assert received.vapid_subject == "mailto:ops@shop.test"
    assert result.provider_message_id.startswith(push.url + "/message/")


async def test_ttl_is_always_set(push: WebPushPeer) -> None:
    subscription = json.dumps(push.subscribe())
    await webpush().send(Message(to=subscription, text="a"), "k1")
    await webpush(ttl=60, urgency="high").send(Message(to=subscription, text="b"), "k2")
    assert [(r.ttl, r.urgency) for r in push.received] == [(86400, "normal"), (60, "high")]


async def test_vapid_claims_are_fresh_for_every_push_service() -> None:
    """One channel, two push services: each JWT's audience is that service's origin."""
    channel = webpush()
    async with WebPushPeer() as first, WebPushPeer() as second:
        for peer in (first, second, first):
            await channel.send(Message(to=json.dumps(peer.subscribe()), text="x"), "k")
        assert (first.accepted, second.accepted) == (2, 1)
        assert first.rejections == second.rejections == []


async def test_expired_and_unknown_subscriptions_are_gone(push: WebPushPeer) -> None:
    subscription = push.subscribe()
    push.expire(subscription)
    with pytest.raises(RecipientGone) as info:
        await webpush().send(Message(to=json.dumps(subscription), text="x"), "k")
    assert info.value.status == 410
    unknown = {**subscription, "endpoint": push.url + "/push/never-subscribed"}
    with pytest.raises(RecipientGone) as info:
        await webpush().send(Message(to=json.dumps(unknown), text="x"), "k")
    assert info.value.status == 404


async def test_push_service_answers(push: WebPushPeer) -> None:
    subscription = json.dumps(push.subscribe())
    push.fail_next(1, 429, headers={"Retry-After": "12"})
    with pytest.raises(TransientError) as info:
        await webpush().send(Message(to=subscription, text="x"), "k")
    assert info.value.retry_after == 12
    with pytest.raises(ContentRejected):
        await webpush().send(Message(to=subscription, text="x" * 5000), "k")
    other_pem, _ = generate_vapid_keys()
    with pytest.raises(ChannelMisconfigured):
        await webpush(vapid_private_key=other_pem).send(Message(to=subscription, text="x"), "k")
    push.fail_next(1, 503)
    with pytest.raises(AmbiguousError):
        await webpush().send(Message(to=subscription, text="x"), "k")


async def test_unusable_subscription_is_invalid() -> None:
    with pytest.raises(RecipientInvalid):
        await webpush().send(Message(to="not json", text="x"), "k")
    with pytest.raises(RecipientInvalid):
        await webpush().send(Message(to=json.dumps({"endpoint": "http://x/"}), text="x"), "k")


async def test_unreachable_push_service_is_transient(push: WebPushPeer) -> None:
    subscription = push.subscribe()
    subscription["endpoint"] = f"http://127.0.0.1:{closed_port()}/push/x"
    with pytest.raises(TransientError):
        await webpush().send(Message(to=json.dumps(subscription), text="x"), "k")


# -- FCM ------------------------------------------------------------------------------


@pytest.fixture
async def fcm():
    async with FcmPeer() as peer:
        yield peer


def fcm_channel(peer: FcmPeer, **overrides) -> FcmChannel:
    config = {
        "service_account_json": json.dumps(peer.service_account_info()),
        "base_url": peer.url,
    }
    return FcmChannel({**config, **overrides})


async def test_fcm_message_and_token_reuse(fcm: FcmPeer) -> None:
    channel = fcm_channel(fcm, ttl=3600)
    for n in range(3):
        result = await channel.send(
            Message(
                to=f"token-{n}", title="Cart", text="3 items", data={"n": 3}, delivery_id=f"d{n}"
            ),
            f"k{n}",
        )
        assert result.provider_message_id.startswith("projects/journeyman-test/messages/")
    assert fcm.token_requests == 1
    sent = fcm.received[0].message
    assert sent["token"] == "token-0"
    assert sent["notification"] == {"title": "Cart", "body": "3 items"}
    assert sent["data"] == {"n": "3", "delivery_id": "d0"}
    assert sent["android"]["ttl"] == "3600s"
    await channel.aclose()


@pytest.mark.parametrize(
    ("script", "error", "retry_after"),
    [
        (lambda p: p.quota_exceeded(1, 30), TransientError, 30.0),
        (lambda p: p.unavailable(1, 5), AmbiguousError, 5.0),
        (lambda p: p.internal(1), AmbiguousError, None),
    ],
)
async def test_fcm_provider_failures(fcm: FcmPeer, script, error, retry_after) -> None:
    script(fcm)
    with pytest.raises(error) as info:
        await fcm_channel(fcm).send(Message(to="token", text="x"), "k")
    assert info.value.retry_after == retry_after
    assert fcm.requests == 1


async def test_fcm_recipient_errors(fcm: FcmPeer) -> None:
    fcm.unregister("old-token")
    channel = fcm_channel(fcm)
    with pytest.raises(RecipientGone) as info:
        await channel.send(Message(to="old-token", text="x"), "k")
    assert info.value.code == "UNREGISTERED"
    with pytest.raises(RecipientInvalid):
        await channel.send(Message(to="invalid-token", text="x"), "k")
    with pytest.raises(RecipientGone) as info:
        await fcm_channel(fcm, project_id="someone-else").send(Message(to="t", text="x"), "k")
    assert info.value.code == "SENDER_ID_MISMATCH"


async def test_fcm_token_endpoint_failure_sends_nothing(fcm: FcmPeer) -> None:
    from journeyman.channels.testing.peers import Failure

    fcm.token_failures.add(Failure(503, {"error": "backend_error"}))
    with pytest.raises(TransientError, match="nothing was sent"):
        await fcm_channel(fcm).send(Message(to="token", text="x"), "k")
    assert fcm.requests == 0


async def test_fcm_expired_token_is_fetched_again(fcm: FcmPeer) -> None:
    channel = fcm_channel(fcm)
    await channel.send(Message(to="token", text="x"), "k")
    fcm._tokens.clear()  # the provider forgets the token, as after a key rotation
    with pytest.raises(ChannelMisconfigured):
        await channel.send(Message(to="token", text="x"), "k")
    await channel.send(Message(to="token", text="x"), "k")
    assert fcm.token_requests == 2 and fcm.accepted == 2
