"""A retry's claim gets the full reconcile grace, measured from that claim, not from the first
attempt: a stalled attempt's fresh claim is never released and sent again by a retry a
second later."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from journeyman.channels.base import DeliveryResult, Message
from journeyman.channels.sms import SmsChannel
from journeyman.channels.testing.peers import TwilioPeer
from journeyman.engine.contracts.delivery import delivery_id
from journeyman.engine.delivery import claims
from temporalio.exceptions import ApplicationError

from .delivery_testkit import add_member, deliverer, make_settings, request, sms_channel


class GatedSms(SmsChannel):
    """The SMS channel, stopped just before its provider call until `gate` opens."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        self.entered.set()
        await self.gate.wait()
        return await super().send(message, idempotency_key)


@pytest.fixture
async def twilio():
    async with TwilioPeer() as peer:
        yield peer


async def test_a_retry_claim_is_not_released_within_its_grace(store, tmp_path, twilio) -> None:
    settings = make_settings(tmp_path)
    grace = settings.delivery.reconcile_grace
    member = await add_member(store, settings)
    req = request(member, ["sms"])
    did = delivery_id(req)
    now = dt.datetime.now(dt.UTC)
    first = now - 2 * grace
    # The first attempt, long ago: claimed, and Twilio certainly did not take the message.
    await store.append(
        claims.stream_of(did),
        [
            claims.claimed(did, "sms", "wf", first),
            claims.released(did, "sms", {"type": "TransientError"}, "wf"),
        ],
    )
    # A retry claims now and stalls right before calling Twilio ...
    gated = GatedSms(sms_channel(twilio).config.model_dump())
    stalled = asyncio.create_task(
        deliverer(store, settings, {"sms": gated}, clock=lambda: now).deliver(req)
    )
    await asyncio.wait_for(gated.entered.wait(), 60)
    state = await claims.load(store, did)
    assert state.claim is not None and state.claimed_at == now
    assert state.first_rendered_at == first  # the text stays the first attempt's
    # ... and another retry one second later must wait for it, not send again.
    other = deliverer(
        store, settings, {"sms": sms_channel(twilio)}, clock=lambda: now + dt.timedelta(seconds=1)
    )
    with pytest.raises(ApplicationError) as pending:
        await other.deliver(req)
    assert pending.value.type == "ReconcilePending"
    assert pending.value.next_retry_delay == grace - dt.timedelta(seconds=1)
    assert twilio.requests == 0
    # The stalled attempt goes on and sends; the message leaves once.
    gated.gate.set()
    outcome = await asyncio.wait_for(stalled, 60)
    assert outcome.status == "sent"
    assert (await other.deliver(req)).status == "sent"
    assert twilio.requests == 1 and twilio.accepted == 1
