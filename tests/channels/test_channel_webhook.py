"""The signed-webhook channel against a receiver that verifies the signature."""

from __future__ import annotations

import time

import pytest
from journeyman.channels import AmbiguousError, ContentRejected, Message, TransientError
from journeyman.channels.testing.peers import WebhookPeer
from journeyman.channels.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    sign,
    verify_signature,
)


@pytest.fixture
async def hook():
    async with WebhookPeer(secret="s3cret") as peer:
        yield peer


async def test_signed_json_with_idempotency_key(hook: WebhookPeer) -> None:
    channel = WebhookChannel({"url": hook.endpoint, "secret": "s3cret"})
    result = await channel.send(
        Message(to="member-1", member_id="member-1", text="hi", data={"sku": "A1"}), "key-1"
    )
    [received] = hook.received
    assert received.body["data"] == {"sku": "A1"}
    assert received.body["idempotency_key"] == "key-1"
    assert received.headers["idempotency-key"] == "key-1"
    assert result.provider_message_id == received.id
    again = await channel.send(Message(to="member-1", text="hi"), "key-1")
    assert again.provider_message_id == received.id and hook.accepted == 1
    await channel.aclose()


def test_signature_verification() -> None:
    body = b'{"a":1}'
    now = int(time.time())
    signature = sign("s3cret", now, body)
    assert verify_signature("s3cret", str(now), body, signature)
    assert not verify_signature("s3cret", str(now), body + b" ", signature)
    assert not verify_signature("other", str(now), body, signature)
    assert not verify_signature("s3cret", str(now - 3600), body, sign("s3cret", now - 3600, body))
    assert not verify_signature("s3cret", None, body, signature)
    assert SIGNATURE_HEADER.startswith("X-") and TIMESTAMP_HEADER.startswith("X-")


async def test_receiver_answers(hook: WebhookPeer) -> None:
    channel = WebhookChannel({"url": hook.endpoint, "secret": "s3cret"})
    hook.fail_next(1, 429, headers={"Retry-After": "4"})
    with pytest.raises(TransientError) as info:
        await channel.send(Message(to="m", text="x"), "k")
    assert info.value.retry_after == 4
    hook.fail_next(1, 422, {"error": "unknown template"})
    with pytest.raises(ContentRejected):
        await channel.send(Message(to="m", text="x"), "k")
    hook.fail_next(1, 200, drop=True)
    with pytest.raises(AmbiguousError):
        await channel.send(Message(to="m", text="x"), "k")
    assert hook.requests == 3 and hook.accepted == 0
    await channel.aclose()
