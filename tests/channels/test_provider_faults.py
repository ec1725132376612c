"""A provider that answers 429 or 500 for a while: every send is exactly one request at the
peer (no SDK-internal re-sends), each failure is classified, and the first send after the
outage is delivered once."""

from __future__ import annotations

import json

import pytest
from journeyman.channels import AmbiguousError, Message, TransientError
from journeyman.channels.fcm import FcmChannel
from journeyman.channels.sms import SmsChannel
from journeyman.channels.testing.peers import (
    FcmPeer,
    TwilioPeer,
    WebhookPeer,
    WebPushPeer,
    generate_vapid_keys,
)
from journeyman.channels.webhook import WebhookChannel
from journeyman.channels.webpush import WebPushChannel


async def _twilio():
    peer = await TwilioPeer().start()
    channel = SmsChannel(
        {
            "account_sid": peer.account_sid,
            "auth_token": peer.auth_token,
            "from_number": "+15005550006",
            "api_base_url": peer.url,
        }
    )
    return peer, channel, Message(to="+15551230001", text="hi")


async def _fcm():
    peer = await FcmPeer().start()
    channel = FcmChannel(
        {"service_account_json": json.dumps(peer.service_account_info()), "base_url": peer.url}
    )
    return peer, channel, Message(to="token", text="hi")


async def _webpush():
    pem, _ = generate_vapid_keys()
    peer = await WebPushPeer().start()
    channel = WebPushChannel({"vapid_private_key": pem, "vapid_subject": "mailto:o@s.t"})
    return peer, channel, Message(to=json.dumps(peer.subscribe()), text="hi")


async def _webhook():
    peer = await WebhookPeer(secret="s").start()
    channel = WebhookChannel({"url": peer.endpoint, "secret": "s"})
    return peer, channel, Message(to="m", text="hi")


PROVIDERS = {"twilio": _twilio, "fcm": _fcm, "webpush": _webpush, "webhook": _webhook}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize(
    ("status", "error"), [(429, TransientError), (500, AmbiguousError), (503, AmbiguousError)]
)
async def test_outage_is_classified_one_request_per_send(provider, status, error) -> None:
    peer, channel, message = await PROVIDERS[provider]()
    try:
        peer.fail_next(4, status, {"error": {"code": status}}, {"Retry-After": "2"})
        for n in range(1, 5):
            with pytest.raises(error) as info:
                await channel.send(message, f"key-{n}")
            assert info.value.retry_after == 2.0
            assert peer.requests == n
        assert peer.accepted == 0
        await channel.send(message, "key-after")
        assert (peer.requests, peer.accepted) == (5, 1)
    finally:
        await channel.aclose()
        await peer.stop()
