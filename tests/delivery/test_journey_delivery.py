"""Journeys sending through the real deliver path on Temporal's time-skipping server: the
main queue routes each send to its channel's task queue (a worker per channel, rate-limited
by Temporal), providers fail for a while, and the peers count what really arrived."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput, JourneyResult
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.delivery.workers import channel_workers
from journeyman.event_store import PostgresEventStore
from journeyman.workflows.cart_recovery import CartRecovery
from temporalio.client import Client
from temporalio.worker import Worker

from .delivery_testkit import (
    add_member,
    email_channel,
    make_settings,
    sms_channel,
    types_of,
)


@contextlib.asynccontextmanager
async def delivery_workers(
    client: Client, store: PostgresEventStore, deliverer: Deliverer
) -> AsyncIterator[str]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    acts = JourneyActivities(
        store, client=client, task_queue=task_queue, deliver_impl=deliverer.deliver
    )
    main = Worker(client, task_queue=task_queue, workflows=[CartRecovery], activities=acts.all())
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(main)
        for w in channel_workers(client, deliverer):
            await stack.enter_async_context(w)
        yield task_queue


def cart_member_id() -> str:
    spec = CartRecovery.__journey__
    while True:
        member = f"m-{uuid.uuid4().hex[:10]}"
        if not spec.assign(member)[1]:
            return member


async def run_cart(
    client: Client, task_queue: str, member: str, queues: list[str] | None = None
) -> JourneyResult:
    spec = CartRecovery.__journey__
    trigger = JourneyEvent(
        position=1,
        type="cart.updated",
        data={"cart_id": "c1", "items": [{"name": "Teapot"}]},
        event_id=f"ev-{uuid.uuid4().hex}",
    )
    handle = await client.start_workflow(
        spec.name,
        JourneyInput(
            member_id=member,
            key="c1",
            trigger=trigger,
            settings=spec.resolve_settings(None).model_dump(mode="json"),
        ),
        id=spec.workflow_id(member, "c1"),
        task_queue=task_queue,
        result_type=JourneyResult,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[trigger],
    )
    result = await handle.result()
    if queues is not None:  # the task queues the deliver activities were scheduled on
        async for e in handle.fetch_history_events():
            if e.HasField("activity_task_scheduled_event_attributes"):
                attrs = e.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == "deliver":
                    queues.append(attrs.task_queue.name)
    return result


@pytest.fixture
async def peers() -> AsyncIterator[tuple[SmtpPeer, TwilioPeer]]:
    async with SmtpPeer() as smtp, TwilioPeer() as twilio:
        yield smtp, twilio


def make(store: PostgresEventStore, settings: Any, smtp: SmtpPeer, twilio: TwilioPeer):
    channels = {"email": email_channel(smtp), "sms": sms_channel(twilio)}
    return Deliverer(store, channels, settings=settings, channel_queues=True)


@pytest.mark.slow
async def test_provider_refusing_for_a_while_is_retried_and_delivered_once(
    temporal_env, store, tmp_path, peers
) -> None:
    smtp, twilio = peers
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, member_id=cart_member_id())
    smtp.reply("MAIL", "451 4.3.2 Try again later", times=3)
    twilio.rate_limit(times=3, retry_after=30)
    deliverer = make(store, settings, smtp, twilio)
    async with delivery_workers(temporal_env.client, store, deliverer) as tq:
        queues: list[str] = []
        result = await run_cart(temporal_env.client, tq, member, queues)
    assert [(s.template, s.status, s.channel) for s in result.sends] == [
        ("cart_reminder", "sent", "email"),
        ("cart_coupon", "sent", "sms"),
    ]
    # policies on the journey's queue, provider calls on each channel's own queue
    assert queues == [tq, "journeyman-channel-email", tq, "journeyman-channel-sms"]
    # four attempts each at the peer, exactly one message each
    assert smtp.attempts == 4 and len(smtp.messages) == 1
    assert twilio.requests == 4 and twilio.accepted == 1
    assert "C" in twilio.messages[0].body and "STOP" in twilio.messages[0].body
    assert (await types_of(store, member)).count("message.sent") == 2


@pytest.mark.slow
async def test_permanent_error_is_not_retried_and_falls_back(
    temporal_env, store, tmp_path, peers
) -> None:
    smtp, twilio = peers
    settings = make_settings(tmp_path)
    member = await add_member(
        store,
        settings,
        member_id=cart_member_id(),
        phone="+15005550001",  # invalid number
    )
    deliverer = make(store, settings, smtp, twilio)
    async with delivery_workers(temporal_env.client, store, deliverer) as tq:
        result = await run_cart(temporal_env.client, tq, member)
    assert [(s.template, s.status, s.channel) for s in result.sends] == [
        ("cart_reminder", "sent", "email"),
        ("cart_coupon", "sent", "email"),  # SMS failed permanently: email instead
    ]
    assert twilio.requests == 1 and twilio.accepted == 0  # no retry
    assert len(smtp.messages) == 2
    events = await store.read_stream(f"member-{member}")
    failed = [e for e in events if e.type == "message.failed"]
    assert len(failed) == 1 and failed[0].data["channel"] == "sms"
    assert failed[0].data["template"] == "cart_coupon"


async def sms_sent(store: PostgresEventStore, member: str) -> list[Any]:
    events = await store.read_stream(f"member-{member}")
    return [e for e in events if e.type == "message.sent" and e.data["channel"] == "sms"]


@pytest.mark.slow
async def test_provider_500_without_storing_is_reconciled_and_delivered_once(
    temporal_env, store, tmp_path, peers
) -> None:
    smtp, twilio = peers
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, member_id=cart_member_id())
    twilio.server_error(times=2)  # 500 after the POST, nothing stored: it may have been taken
    deliverer = make(store, settings, smtp, twilio)
    async with delivery_workers(temporal_env.client, store, deliverer) as tq:
        result = await run_cart(temporal_env.client, tq, member)
    assert [(s.template, s.status, s.channel) for s in result.sends] == [
        ("cart_reminder", "sent", "email"),
        ("cart_coupon", "sent", "sms"),
    ]
    # each 500 was looked up (absent) before the next POST; one message arrived
    assert twilio.requests == 3 and twilio.lookups == 2 and twilio.accepted == 1
    [sent] = await sms_sent(store, member)
    assert sent.data["provider_message_id"] == twilio.messages[0].sid


@pytest.mark.slow
async def test_provider_500_after_storing_is_found_and_never_resent(
    temporal_env, store, tmp_path, peers
) -> None:
    smtp, twilio = peers
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, member_id=cart_member_id())
    twilio.accept_then_fail(times=1)  # Twilio took the message, then answered 500
    deliverer = make(store, settings, smtp, twilio)
    async with delivery_workers(temporal_env.client, store, deliverer) as tq:
        result = await run_cart(temporal_env.client, tq, member)
    assert [(s.template, s.status, s.channel) for s in result.sends] == [
        ("cart_reminder", "sent", "email"),
        ("cart_coupon", "sent", "sms"),
    ]
    assert twilio.requests == 1 and twilio.accepted == 1 and twilio.lookups == 1
    [sent] = await sms_sent(store, member)
    assert sent.data["provider_message_id"] == twilio.messages[0].sid
    assert sent.data["reconciled"] is True
