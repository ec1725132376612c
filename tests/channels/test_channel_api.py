"""The public face of `channels`: exported names, the error hierarchy, configuration,
routing and task queues."""

from __future__ import annotations

import pickle

import journeyman.channels as channels
import pytest
from journeyman.channels import (
    AmbiguousError,
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    DeliveryResult,
    Message,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    RecipientUnsubscribed,
    TransientError,
    route,
    task_queue_for,
)
from journeyman.channels.email import EmailChannel
from journeyman.channels.outbox import OutboxChannel
from journeyman.channels.sms import SmsChannel


def test_exported_names() -> None:
    assert set(channels.__all__) == {
        "AmbiguousError",
        "Channel",
        "ChannelConfig",
        "ChannelError",
        "ChannelMisconfigured",
        "ContactKind",
        "ContentRejected",
        "DeliveryEvent",
        "DeliveryResult",
        "Message",
        "PermanentError",
        "RecipientGone",
        "RecipientInvalid",
        "ReconcileUnsupported",
        "RecipientUnsubscribed",
        "TransientError",
        "WebhookRequest",
        "route",
        "task_queue_for",
    }
    for name in channels.__all__:
        assert getattr(channels, name) is not None


def test_error_hierarchy_says_whether_it_was_sent() -> None:
    for cls in (TransientError, AmbiguousError, PermanentError):
        assert issubclass(cls, ChannelError)
    for cls in (
        RecipientInvalid,
        RecipientGone,
        RecipientUnsubscribed,
        ContentRejected,
        ChannelMisconfigured,
    ):
        assert issubclass(cls, PermanentError)
        assert not cls.retryable and not cls.may_have_been_sent
    assert TransientError.retryable and not TransientError.may_have_been_sent
    assert AmbiguousError.may_have_been_sent and not AmbiguousError.retryable
    actions = {
        cls.action
        for cls in (RecipientInvalid, RecipientGone, RecipientUnsubscribed, ChannelMisconfigured)
    }
    assert actions == {"suppress", "drop_contact", "consent_off", "pause_channel"}


def test_errors_document_every_class() -> None:
    doc = channels.errors.__doc__ or ""
    for name in channels.errors.__all__:
        assert name in doc


def test_errors_pickle_with_their_details() -> None:
    error = TransientError("busy", channel="sms", code=20429, status=429, retry_after=7.0)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TransientError
    assert (copy.channel, copy.code, copy.status, copy.retry_after) == ("sms", 20429, 429, 7.0)
    assert copy.to_dict()["retryable"] is True


def test_missing_settings_leave_a_channel_not_configured() -> None:
    email = EmailChannel()
    assert not email.configured
    assert "JOURNEYMAN_CHANNELS__EMAIL__HOST" in (email.not_configured_reason or "")
    email.configure({"host": "smtp.example.com", "from_address": "a@b.c"})
    assert email.configured and email.not_configured_reason is None


async def test_send_on_an_unconfigured_channel_is_misconfiguration() -> None:
    with pytest.raises(ChannelMisconfigured, match="JOURNEYMAN_CHANNELS__SMS__ACCOUNT_SID"):
        await SmsChannel().send(Message(to="+15551230001", text="x"), "k")


def test_invalid_settings_name_the_setting() -> None:
    with pytest.raises(ChannelMisconfigured, match="JOURNEYMAN_CHANNELS__EMAIL__PORT"):
        EmailChannel({"host": "h", "from_address": "a@b.c", "port": "not-a-port"})


def test_settings_can_lower_the_rate_limit() -> None:
    email = EmailChannel({"host": "h", "from_address": "a@b.c", "rate_limit_per_second": 2})
    assert email.rate_limit_per_second == 2
    assert EmailChannel.rate_limit_per_second == 20


def test_describe_masks_secrets() -> None:
    sms = SmsChannel(
        {"account_sid": "AC1", "auth_token": "tok-very-secret", "from_number": "+15005550006"}
    )
    described = sms.describe()
    assert described["settings"]["auth_token"] == "**********"
    assert "tok-very-secret" not in repr(described) + repr(sms.config)
    assert described["task_queue"] == "journeyman-channel-sms"


def test_task_queue_per_channel() -> None:
    assert task_queue_for("email") == "journeyman-channel-email"
    assert task_queue_for("sms", prefix="shop") == "shop-channel-sms"
    with pytest.raises(ValueError):
        task_queue_for("Bad Name")


def test_route_falls_back_to_the_outbox_only_when_asked(tmp_path) -> None:
    registry = {"email": EmailChannel(), "outbox": OutboxChannel({"directory": tmp_path})}
    assert route(registry, "email", fallback="outbox") is registry["outbox"]
    with pytest.raises(ChannelMisconfigured, match="not configured"):
        route(registry, "email")
    with pytest.raises(ChannelMisconfigured, match="registered: email, outbox"):
        route(registry, "carrier")
    registry["email"].configure({"host": "h", "from_address": "a@b.c"})
    assert route(registry, "email", fallback="outbox") is registry["email"]


def test_settings_from_the_environment_configure_channels(monkeypatch, tmp_path) -> None:
    from journeyman.engine.core.settings import Settings
    from journeyman.plugins import PluginManager

    monkeypatch.setenv("JOURNEYMAN_CHANNELS__EMAIL__HOST", "smtp.shop.test")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__EMAIL__FROM_ADDRESS", "news@shop.test")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__EMAIL__PORT", "2525")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__OUTBOX__DIRECTORY", str(tmp_path))
    settings = Settings(_env_file=None)
    found = PluginManager(load="builtin_channels").channels(settings.channels)
    assert found["email"].configured
    assert found["email"].config.effective_port() == 2525
    assert found["outbox"].config.directory == tmp_path
    assert not found["sms"].configured


def test_delivery_result_is_json_ready() -> None:
    result = DeliveryResult(channel="email", provider_message_id="<a@b>")
    assert result.to_dict()["accepted_at"].endswith("+00:00")
