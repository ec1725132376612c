"""Every built-in channel passes the shipped contract suite against its real peer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from journeyman.channels import Message, RecipientGone, RecipientInvalid
from journeyman.channels.email import EmailChannel
from journeyman.channels.fcm import FcmChannel
from journeyman.channels.outbox import OutboxChannel
from journeyman.channels.sms import SmsChannel
from journeyman.channels.testing import ChannelContract, ChannelHarness
from journeyman.channels.testing.peers import (
    FcmPeer,
    SmtpPeer,
    TwilioPeer,
    WebhookPeer,
    WebPushPeer,
    closed_port,
    generate_vapid_keys,
)
from journeyman.channels.testing.peers.fcm import fcm_error
from journeyman.channels.testing.peers.twilio import error_body
from journeyman.channels.webhook import WebhookChannel
from journeyman.channels.webpush import WebPushChannel


class TestEmailContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        async with SmtpPeer(credentials=("shop", "smtp-s3cret")) as smtp:

            def email(password: str = "smtp-s3cret", port: int = smtp.port) -> EmailChannel:
                return EmailChannel(
                    {
                        "host": "127.0.0.1",
                        "port": port,
                        "security": "none",
                        "username": "shop",
                        "password": password,
                        "from_address": "Shop <news@shop.test>",
                        "timeout": 5,
                    }
                )

            channel = email()
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to="ann@example.com", subject="Hi", text="Hello"),
                attempts=lambda: smtp.attempts,
                accepted=lambda: len(smtp.messages),
                fail_transient=lambda n: smtp.reply("RCPT", "451 4.3.0 Try again later", n),
                fail_after_send=smtp.disconnect_after_data,
                invalid_recipient=Message(to="nobody@example.com", text="x"),
                bad_credentials=email(password="wrong"),
                unreachable=email(port=closed_port()),
                secrets=["smtp-s3cret"],
                drop_connection=smtp.disconnect_after_data,
                reject_content=lambda n: smtp.reply("DATA", "554 5.6.0 Content rejected", n),
            )
            await channel.aclose()


class TestSmsContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        async with TwilioPeer(auth_token="twilio-s3cret") as twilio:

            def sms(token: str = "twilio-s3cret", url: str = twilio.url) -> SmsChannel:
                return SmsChannel(
                    {
                        "account_sid": twilio.account_sid,
                        "auth_token": token,
                        "from_number": "+15005550006",
                        "api_base_url": url,
                    }
                )

            channel = sms()
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to="+15551230001", text="Your cart"),
                attempts=lambda: twilio.requests,
                accepted=lambda: twilio.accepted,
                fail_transient=twilio.rate_limit,
                fail_after_send=twilio.server_error,
                invalid_recipient=Message(to="+15005550001", text="x"),
                bad_credentials=sms(token="wrong"),
                unreachable=sms(url=f"http://127.0.0.1:{closed_port()}"),
                secrets=["twilio-s3cret"],
                rate_limited=twilio.rate_limit,
                drop_connection=lambda n: twilio.fail_next(n, 200, drop=True),
                reject_content=lambda n: twilio.fail_next(
                    n, 400, error_body(400, 21617, "The message body exceeds 1600 characters")
                ),
                signed_webhook=lambda sent, _: twilio.signed_status(
                    sent.provider_message_id, "https://shop.test/v1/feedback/sms?delivery_id=d1"
                ),
            )
            await channel.aclose()


class TestWebPushContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        pem, public = generate_vapid_keys()
        other_pem, _ = generate_vapid_keys()
        async with WebPushPeer(application_server_key=public) as push:
            subscription = json.dumps(push.subscribe())
            gone = push.subscribe()
            push.expire(gone)

            def webpush(key: str = pem) -> WebPushChannel:
                return WebPushChannel({"vapid_private_key": key, "vapid_subject": "mailto:o@s.t"})

            channel = webpush()
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to=subscription, title="Hi", text="Your cart"),
                attempts=lambda: push.requests,
                accepted=lambda: push.accepted,
                fail_transient=lambda n: push.fail_next(n, 429, headers={"Retry-After": "3"}),
                fail_after_send=lambda n: push.fail_next(n, 502),
                invalid_recipient=Message(to=json.dumps(gone), text="x"),
                invalid_recipient_error=RecipientGone,
                bad_credentials=webpush(other_pem),
                secrets=[pem.splitlines()[1]],
                rate_limited=lambda n, s: push.fail_next(n, 429, headers={"Retry-After": str(s)}),
                drop_connection=lambda n: push.fail_next(n, 200, drop=True),
                reject_content=lambda n: push.fail_next(n, 413),
            )
            await channel.aclose()


class TestFcmContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        async with FcmPeer() as fcm:
            fcm.unregister("gone-token")
            impostor = FcmPeer().service_account_info()  # another key, same identity
            impostor.update(client_email=fcm.client_email, token_uri=fcm.token_uri)
            dead = f"http://127.0.0.1:{closed_port()}"

            def make(account: dict, base_url: str = fcm.url, **extra: str) -> FcmChannel:
                config = {"service_account_json": json.dumps(account), "base_url": base_url}
                return FcmChannel({**config, **extra})

            account = fcm.service_account_info()
            channel = make(account)
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to="device-token-1", title="Hi", text="Cart"),
                attempts=lambda: fcm.requests,
                accepted=lambda: fcm.accepted,
                fail_transient=fcm.quota_exceeded,
                fail_after_send=fcm.internal,
                invalid_recipient=Message(to="gone-token", text="x"),
                invalid_recipient_error=RecipientGone,
                bad_credentials=make(impostor),
                unreachable=make(account, dead, token_uri=f"{dead}/token"),
                secrets=[account["private_key"].splitlines()[1]],
                rate_limited=fcm.quota_exceeded,
                drop_connection=lambda n: fcm.fail_next(n, 200, drop=True),
                reject_content=lambda n: fcm.fail_next(
                    n, 400, fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
                ),
            )
            await channel.aclose()


class TestWebhookContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        async with WebhookPeer(secret="hook-s3cret") as hook:
            hook.gone.add("member-gone")

            def webhook(secret: str = "hook-s3cret", url: str = hook.endpoint) -> WebhookChannel:
                return WebhookChannel({"url": url, "secret": secret})

            channel = webhook()
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to="member-1", text="hello", member_id="member-1"),
                attempts=lambda: hook.requests,
                accepted=lambda: hook.accepted,
                fail_transient=lambda n: hook.fail_next(n, 429),
                fail_after_send=lambda n: hook.fail_next(n, 503),
                invalid_recipient=Message(to="member-gone", text="x"),
                invalid_recipient_error=RecipientGone,
                bad_credentials=webhook(secret="wrong"),
                unreachable=webhook(url=f"http://127.0.0.1:{closed_port()}/hook"),
                secrets=["hook-s3cret"],
                rate_limited=lambda n, s: hook.fail_next(n, 429, headers={"Retry-After": str(s)}),
                drop_connection=lambda n: hook.fail_next(n, 200, drop=True),
                reject_content=lambda n: hook.fail_next(n, 422),
            )
            await channel.aclose()


class TestOutboxContract(ChannelContract):
    @pytest.fixture
    async def harness(self, tmp_path: Path):
        channel = OutboxChannel({"directory": tmp_path})
        files = lambda: len(list(tmp_path.glob("*.json")))  # noqa: E731
        yield ChannelHarness(
            channel=channel,
            make_message=lambda: Message(to="ann@example.com", text="hello"),
            attempts=files,
            accepted=files,
        )


def test_recipient_invalid_is_the_default_expectation() -> None:
    assert ChannelHarness.__dataclass_fields__["invalid_recipient_error"].default is (
        RecipientInvalid
    )
