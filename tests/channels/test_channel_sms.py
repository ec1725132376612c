"""SMS through the real twilio SDK against a local Twilio Messages API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from journeyman.channels import (
    AmbiguousError,
    ChannelMisconfigured,
    ContentRejected,
    Message,
    RecipientInvalid,
    RecipientUnsubscribed,
    TransientError,
    WebhookRequest,
)
from journeyman.channels.sms import SmsChannel
from journeyman.channels.testing.peers import TwilioPeer

CALLBACK = "https://journeyman.shop.test/webhooks/twilio/status"


@pytest.fixture
async def twilio():
    async with TwilioPeer() as peer:
        yield peer


@pytest.fixture
async def sms(twilio: TwilioPeer):
    channel = SmsChannel(
        {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_number": "+15005550006",
            "api_base_url": twilio.url,
            "status_callback_url": CALLBACK,
        }
    )
    yield channel
    await channel.aclose()


async def test_form_fields_and_status_callback(twilio: TwilioPeer, sms: SmsChannel) -> None:
    result = await sms.send(
        Message(to="+15551230001", text="Your cart", delivery_id="dlv-42"), "key"
    )
    [sent] = twilio.messages
    assert result.provider_message_id == sent.sid and sent.sid.startswith("SM")
    assert result.status == "queued"
    assert sent.form["To"] == "+15551230001"
    assert sent.form["From"] == "+15005550006"
    assert sent.form["Body"] == "Your cart"
    callback = urlsplit(sent.status_callback)
    assert callback._replace(query="").geturl() == CALLBACK
    assert parse_qs(callback.query) == {"delivery_id": ["dlv-42"]}


async def test_messaging_service_instead_of_a_number(twilio: TwilioPeer) -> None:
    channel = SmsChannel(
        {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "messaging_service_sid": "MG" + "1" * 32,
            "api_base_url": twilio.url,
        }
    )
    await channel.send(Message(to="+15551230001", text="hi"), "k")
    assert twilio.messages[0].form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in twilio.messages[0].form
    await channel.aclose()


@pytest.mark.parametrize(
    ("to", "text", "error", "code"),
    [
        ("+15005550001", "hi", RecipientInvalid, 21211),
        ("+15005550002", "hi", RecipientInvalid, 21612),
        ("+15005550009", "hi", RecipientInvalid, 21614),
        ("+15005550004", "hi", RecipientUnsubscribed, 21610),
        ("+15551230001", "x" * 1601, ContentRejected, 21617),
    ],
)
async def test_error_codes(twilio: TwilioPeer, sms: SmsChannel, to, text, error, code) -> None:
    with pytest.raises(error) as info:
        await sms.send(Message(to=to, text=text), "k")
    assert info.value.code == code
    assert twilio.requests == 1


async def test_rate_limit_carries_retry_after(twilio: TwilioPeer, sms: SmsChannel) -> None:
    twilio.rate_limit(times=1, retry_after=17)
    with pytest.raises(TransientError) as info:
        await sms.send(Message(to="+15551230001", text="hi"), "k")
    assert (info.value.code, info.value.retry_after) == (20429, 17.0)


async def test_auth_failure_is_misconfiguration(twilio: TwilioPeer) -> None:
    channel = SmsChannel(
        {
            "account_sid": twilio.account_sid,
            "auth_token": "not-the-token",
            "from_number": "+15005550006",
            "api_base_url": twilio.url,
        }
    )
    with pytest.raises(ChannelMisconfigured) as info:
        await channel.send(Message(to="+15551230001", text="hi"), "k")
    assert info.value.code == 20003
    await channel.aclose()


async def test_dropped_connection_after_post_is_ambiguous(
    twilio: TwilioPeer, sms: SmsChannel
) -> None:
    twilio.fail_next(1, 200, drop=True)
    with pytest.raises(AmbiguousError):
        await sms.send(Message(to="+15551230001", text="hi"), "k")
    assert twilio.requests == 1


def _request(url: str, params: dict[str, str], signature: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url=url,
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body=urlencode(params).encode(),
    )


async def test_signed_status_callback_verifies_and_parses(
    twilio: TwilioPeer, sms: SmsChannel
) -> None:
    result = await sms.send(Message(to="+15551230001", text="hi", delivery_id="dlv-7"), "k")
    url = twilio.messages[0].status_callback
    params = {
        "MessageSid": result.provider_message_id,
        "MessageStatus": "delivered",
        "To": "+15551230001",
    }
    request = _request(url, params, twilio.sign(url, params))
    assert await sms.verify_webhook(request)
    [event] = await sms.parse_webhook(request)
    assert (event.kind, event.delivery_id, event.provider_message_id) == (
        "delivered",
        "dlv-7",
        result.provider_message_id,
    )
    tampered = _request(url, {**params, "MessageStatus": "failed"}, twilio.sign(url, params))
    assert not await sms.verify_webhook(tampered)
    assert not await sms.verify_webhook(_request(url, params, ""))


async def test_inbound_stop_is_an_unsubscribe(twilio: TwilioPeer, sms: SmsChannel) -> None:
    url = "https://journeyman.shop.test/webhooks/twilio/inbound"
    params = {"MessageSid": "SM1", "From": "+15551230001", "Body": "Stop", "SmsStatus": "received"}
    request = _request(url, params, twilio.sign(url, params))
    assert await sms.verify_webhook(request)
    [event] = await sms.parse_webhook(request)
    assert (event.kind, event.contact) == ("unsubscribed", "+15551230001")
    hello = {**params, "Body": "hello?"}
    [event] = await sms.parse_webhook(_request(url, hello, twilio.sign(url, hello)))
    assert event.kind == "inbound"


async def test_peer_posts_twilio_signed_callbacks(twilio: TwilioPeer, sms: SmsChannel) -> None:
    """The peer's own callbacks carry a signature the channel (and the SDK) accept."""
    import httpx

    seen: list[WebhookRequest] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(
            WebhookRequest("POST", str(request.url), dict(request.headers), request.content)
        )
        return httpx.Response(204)

    sms.configure(
        {
            **sms.config.model_dump(),
            "auth_token": twilio.auth_token,
            "status_callback_url": "http://journeyman.test/twilio/status",
        }
    )
    result = await sms.send(Message(to="+15551230001", text="hi", delivery_id="d9"), "k")
    answer = await twilio.send_status_callback(
        result.provider_message_id,
        "undelivered",
        error_code="30003",
        transport=httpx.MockTransport(receiver),
    )
    assert answer.status_code == 204
    assert await sms.verify_webhook(seen[0])
    [event] = await sms.parse_webhook(seen[0])
    assert (event.kind, event.error_code, event.delivery_id) == ("failed", "30003", "d9")


async def test_reconcile_finds_a_message_twilio_took_before_answering_500(
    twilio: TwilioPeer, sms: SmsChannel
) -> None:
    import datetime as dt

    started = dt.datetime.now(dt.UTC)
    message = Message(to="+15551230001", text="Your cart c1", first_attempt_at=started)
    other = Message(to="+15551230002", text="Your cart c1", first_attempt_at=started)
    assert await sms.reconcile(message, "k1") is None  # nothing there yet: certainly not sent
    await sms.send(other, "k2")  # same body, another number: must not match
    twilio.accept_then_fail(1)
    with pytest.raises(AmbiguousError):
        await sms.send(message, "k1")
    found = await sms.reconcile(message, "k1")
    stored = next(m for m in twilio.messages if m.to == message.to)
    assert found is not None and found.provider_message_id == stored.sid
    assert found.detail["reconciled"] is True
    assert twilio.requests == 2 and twilio.lookups == 2
    # a message created before the delivery's first attempt (less the skew) is not it
    later = Message(
        to=message.to, text=message.text, first_attempt_at=started + dt.timedelta(hours=1)
    )
    assert await sms.reconcile(later, "k1") is None


async def test_reconcile_that_cannot_tell_is_ambiguous(twilio: TwilioPeer, sms: SmsChannel) -> None:
    twilio.fail_lookups(1, 503)
    with pytest.raises(AmbiguousError) as info:
        await sms.reconcile(Message(to="+15551230001", text="x"), "k")
    assert info.value.status == 503 and twilio.lookups == 1


async def test_email_cannot_reconcile() -> None:
    from journeyman.channels import ReconcileUnsupported
    from journeyman.channels.email import EmailChannel

    email = EmailChannel()
    assert not email.can_reconcile and email.describe()["reconcile"] is False
    with pytest.raises(ReconcileUnsupported):
        await email.reconcile(Message(to="a@example.com", text="x"), "k")
    assert SmsChannel().can_reconcile
