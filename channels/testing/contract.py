"""The channel contract as a test suite, shipped for plugin authors.

Subclass `ChannelContract` in a test module and give it a `harness` fixture: a
`ChannelHarness` holding your configured channel, a way to make a valid message, and the
peer's counters and failure switches. Every built-in channel passes this same suite::

    from journeyman.channels.testing import ChannelContract, ChannelHarness

    class TestPigeonContract(ChannelContract):
        @pytest.fixture
        async def harness(self):
            async with PigeonLoft() as loft:
                channel = PigeonChannel({"loft_url": loft.url, "api_key": "k"})
                yield ChannelHarness(
                    channel=channel,
                    make_message=lambda: Message(to="member-1", text="coo"),
                    attempts=lambda: loft.requests,
                    accepted=lambda: loft.accepted,
                    fail_transient=lambda n: loft.fail_next(n, 429),
                    fail_after_send=lambda n: loft.fail_next(n, 500),
                )
                await channel.aclose()

What it checks: the declared name, contact kind, rate limit and config model; that a channel
constructed without arguments is not configured when it needs credentials and then refuses to
send without contacting the provider; that secrets never show; that one `send` is exactly one
attempt at the provider — also when the provider fails, which is how SDK-internal retries are
caught; that each failure lands in the right branch of the error hierarchy; and that
concurrent sends on one instance work. Checks whose switch the harness leaves as `None` are
skipped.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import uuid
from collections.abc import AsyncIterator

import pytest
from journeyman.channels.base import (
    NAME_PATTERN,
    Channel,
    ChannelConfig,
    ContactKind,
    DeliveryResult,
)
from journeyman.channels.errors import (
    ChannelMisconfigured,
    PermanentError,
    TransientError,
)

from .harness import ChannelHarness

__all__ = ["ChannelContract", "ChannelHarness"]


def _key() -> str:
    return f"contract-{uuid.uuid4().hex}"


class ChannelContract:
    """Base class of a channel's contract tests; subclasses provide `harness`."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ChannelHarness]:
        raise NotImplementedError("subclass ChannelContract and provide a `harness` fixture")
        yield  # pragma: no cover

    # -- declaration ---------------------------------------------------------------------

    async def test_declares_name_contact_rate_limit_and_config(
        self, harness: ChannelHarness
    ) -> None:
        channel = harness.channel
        assert isinstance(channel, Channel)
        assert NAME_PATTERN.match(channel.name), f"bad channel name {channel.name!r}"
        assert isinstance(channel.contact, ContactKind)
        assert channel.rate_limit_per_second > 0
        assert issubclass(channel.Config, ChannelConfig)
        assert channel.task_queue.endswith(channel.name)
        assert channel.configured, channel.not_configured_reason

    async def test_unconfigured_channel_refuses_without_contacting_provider(
        self, harness: ChannelHarness
    ) -> None:
        fresh = type(harness.channel)()
        assert fresh.name == harness.channel.name
        if fresh.configured:
            pytest.skip("this channel needs no settings")
        assert fresh.not_configured_reason
        before = harness.attempts()
        with pytest.raises(ChannelMisconfigured):
            await fresh.send(harness.make_message(), _key())
        assert harness.attempts() == before

    async def test_secrets_never_show(self, harness: ChannelHarness) -> None:
        channel = harness.channel
        shown = " ".join(
            [
                repr(channel),
                repr(channel.config),
                str(channel.config),
                json.dumps(channel.describe(), default=str),
            ]
        )
        for secret in harness.secrets:
            assert secret not in shown

    # -- sending -------------------------------------------------------------------------

    async def test_send_is_one_attempt_and_returns_a_result(self, harness: ChannelHarness) -> None:
        attempts, accepted = harness.attempts(), harness.accepted()
        result = await harness.channel.send(harness.make_message(), _key())
        assert isinstance(result, DeliveryResult)
        assert result.channel == harness.channel.name
        assert result.accepted_at.tzinfo is not None
        assert harness.attempts() == attempts + 1
        assert harness.accepted() == accepted + 1

    async def test_concurrent_sends_on_one_instance(self, harness: ChannelHarness) -> None:
        accepted = harness.accepted()
        results = await asyncio.gather(
            *(harness.channel.send(harness.make_message(), _key()) for _ in range(5))
        )
        assert all(isinstance(r, DeliveryResult) for r in results)
        assert harness.accepted() == accepted + 5

    async def test_transient_failure_is_one_attempt_then_succeeds(
        self, harness: ChannelHarness
    ) -> None:
        if harness.fail_transient is None:
            pytest.skip("the harness cannot make the provider fail transiently")
        harness.fail_transient(3)
        attempts, accepted = harness.attempts(), harness.accepted()
        for n in range(1, 4):
            with pytest.raises(TransientError) as info:
                await harness.channel.send(harness.make_message(), _key())
            assert info.value.retryable and not info.value.may_have_been_sent
            assert harness.attempts() == attempts + n, "the channel retried inside send"
        assert harness.accepted() == accepted
        await harness.channel.send(harness.make_message(), _key())
        assert harness.accepted() == accepted + 1

    async def test_failure_after_send_is_reported_not_retried(
        self, harness: ChannelHarness
    ) -> None:
        if harness.fail_after_send is None:
            pytest.skip("the harness cannot make the provider fail after the request")
        harness.fail_after_send(2)
        attempts = harness.attempts()
        with pytest.raises(harness.after_send_error):
            await harness.channel.send(harness.make_message(), _key())
        assert harness.attempts() == attempts + 1, "the channel retried inside send"
        with pytest.raises(harness.after_send_error):
            await harness.channel.send(harness.make_message(), _key())
        assert harness.attempts() == attempts + 2

    async def test_invalid_recipient_is_permanent(self, harness: ChannelHarness) -> None:
        if harness.invalid_recipient is None:
            pytest.skip("the harness has no recipient the provider refuses")
        attempts = harness.attempts()
        with pytest.raises(harness.invalid_recipient_error) as info:
            await harness.channel.send(harness.invalid_recipient, _key())
        assert isinstance(info.value, PermanentError)
        assert not info.value.retryable
        assert harness.attempts() <= attempts + 1

    async def test_bad_credentials_are_misconfiguration(self, harness: ChannelHarness) -> None:
        if harness.bad_credentials is None:
            pytest.skip("the harness has no channel with wrong credentials")
        try:
            with pytest.raises(ChannelMisconfigured) as info:
                await harness.bad_credentials.send(harness.make_message(), _key())
        finally:
            await harness.bad_credentials.aclose()
        assert info.value.action == "pause_channel"

    async def test_unreachable_provider_is_transient(self, harness: ChannelHarness) -> None:
        if harness.unreachable is None:
            pytest.skip("the harness has no unreachable configuration")
        try:
            with pytest.raises(TransientError):
                await harness.unreachable.send(harness.make_message(), _key())
        finally:
            await harness.unreachable.aclose()

    async def test_errors_survive_pickling(self, harness: ChannelHarness) -> None:
        if harness.fail_transient is None:
            pytest.skip("the harness cannot make the provider fail transiently")
        harness.fail_transient(1)
        with pytest.raises(TransientError) as info:
            await harness.channel.send(harness.make_message(), _key())
        copy = pickle.loads(pickle.dumps(info.value))
        assert type(copy) is type(info.value)
        assert copy.to_dict() == info.value.to_dict()

    async def test_aclose_is_idempotent(self, harness: ChannelHarness) -> None:
        await harness.channel.send(harness.make_message(), _key())
        await harness.channel.aclose()
        await harness.channel.aclose()
