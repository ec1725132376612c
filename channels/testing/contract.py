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
caught; that each failure lands in the right branch of the error hierarchy (a Retry-After
kept, a connection dropped after the request ambiguous, refused content permanent); that
`reconcile` finds a message that was sent and nothing for one that was not (or says it
cannot look up at all); that a provider's signed callback verifies, parses to events about
the sent message, and fails verification once tampered with; and that concurrent sends on
one instance work. Checks whose switch the harness leaves as `None` are skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
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
    Message,
)
from journeyman.channels.errors import (
    AmbiguousError,
    ChannelMisconfigured,
    PermanentError,
    ReconcileUnsupported,
    TransientError,
)

from .harness import ChannelHarness

__all__ = ["ChannelContract", "ChannelHarness"]


def _unique(message: Message) -> Message:
    """`message` with a text no other message of the run has (lookups match on it)."""
    return dataclasses.replace(message, text=f"{message.text} {uuid.uuid4().hex[:8]}")


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
        if channel.contact == ContactKind.EXTERNAL:
            system = channel.contact_system
            assert system and NAME_PATTERN.match(system.replace("-", "_")), (
                "a channel with an EXTERNAL contact names its system in `contact_system`"
            )
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

    # -- the finer points of failure ----------------------------------------------------

    async def test_retry_after_is_kept(self, harness: ChannelHarness) -> None:
        if harness.rate_limited is None:
            pytest.skip("the harness cannot make the provider ask to slow down")
        harness.rate_limited(1, 7)
        accepted = harness.accepted()
        with pytest.raises(TransientError) as info:
            await harness.channel.send(harness.make_message(), _key())
        assert info.value.retry_after == 7, "the provider's Retry-After was not passed on"
        assert harness.accepted() == accepted

    async def test_dropped_connection_is_ambiguous(self, harness: ChannelHarness) -> None:
        if harness.drop_connection is None:
            pytest.skip("the harness cannot make the provider drop the connection")
        harness.drop_connection(1)
        attempts = harness.attempts()
        with pytest.raises(AmbiguousError) as info:
            await harness.channel.send(harness.make_message(), _key())
        assert info.value.may_have_been_sent
        assert harness.attempts() == attempts + 1, "the channel retried inside send"

    async def test_refused_content_is_permanent(self, harness: ChannelHarness) -> None:
        if harness.reject_content is None:
            pytest.skip("the harness cannot make the provider refuse a message's content")
        harness.reject_content(1)
        accepted = harness.accepted()
        with pytest.raises(harness.rejected_content_error) as info:
            await harness.channel.send(harness.make_message(), _key())
        assert isinstance(info.value, PermanentError) and not info.value.retryable
        await harness.channel.send(harness.make_message(), _key())
        assert harness.accepted() == accepted + 1, "one refused message broke the channel"

    # -- reconciliation -------------------------------------------------------------------

    async def test_reconcile_finds_what_was_sent_and_nothing_else(
        self, harness: ChannelHarness
    ) -> None:
        message, key = _unique(harness.make_message()), _key()
        if not harness.channel.can_reconcile:
            with pytest.raises(ReconcileUnsupported):
                await harness.channel.reconcile(message, key)
            return
        sent = await harness.channel.send(message, key)
        found = await harness.channel.reconcile(message, key)
        assert found is not None, "reconcile did not find a message the provider accepted"
        assert found.provider_message_id == sent.provider_message_id
        never = await harness.channel.reconcile(_unique(harness.make_message()), _key())
        assert never is None, "reconcile found a message that was never sent"

    # -- provider callbacks ---------------------------------------------------------------

    async def test_signed_callbacks_verify_and_parse(self, harness: ChannelHarness) -> None:
        if harness.signed_webhook is None:
            pytest.skip("the harness has no provider callbacks")
        message = _unique(harness.make_message())
        sent = await harness.channel.send(message, _key())
        request = harness.signed_webhook(sent, message)
        if inspect.isawaitable(request):
            request = await request
        assert await harness.channel.verify_webhook(request)
        events = await harness.channel.parse_webhook(request)
        assert events, "a verified callback parsed to no event"
        assert all(e.channel == harness.channel.name for e in events)
        assert any(e.provider_message_id == sent.provider_message_id for e in events)
        forged = dataclasses.replace(request, body=request.body + b"&tampered=1")
        assert not await harness.channel.verify_webhook(forged), "a tampered callback verified"
