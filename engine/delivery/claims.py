"""The never-double-send record of one delivery: the stream `delivery-<id>`.

    delivery.claimed         {channel}           we are about to call the provider
    delivery.released        {channel, error}    the provider certainly did not take it
    delivery.channel_failed  {channel, error}    permanent failure on that channel
    delivery.completed       {outcome}           the final SendOutcome

Each append names the version it expects, so two attempts cannot both claim. A claim that is
the stream's last event means an attempt called the provider and never said what happened
(it crashed, or lost its database): nobody knows whether the message left, so the delivery
is settled as `in_doubt` and never re-sent blindly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from engine.activities.delivery_contract import SendOutcome
from event_store import NO_STREAM, NewEvent, PostgresEventStore
from event_store.model import ExpectedVersion


def stream_of(delivery_id: str) -> str:
    return f"delivery-{delivery_id}"


@dataclass
class DeliveryState:
    delivery_id: str
    version: int = -1
    outcome: SendOutcome | None = None
    claim: dict[str, Any] | None = None
    failed: dict[str, str] = field(default_factory=dict)
    attempts: int = 0

    @property
    def expected(self) -> ExpectedVersion:
        return NO_STREAM if self.version < 0 else self.version


async def load(store: PostgresEventStore, delivery_id: str) -> DeliveryState:
    state = DeliveryState(delivery_id)
    for e in await store.read_stream(stream_of(delivery_id), limit=10_000):
        state.version = e.stream_version
        if e.type == "delivery.claimed":
            state.claim = e.data
            state.attempts += 1
        elif e.type == "delivery.released":
            state.claim = None
        elif e.type == "delivery.channel_failed":
            state.claim = None
            state.failed[e.data["channel"]] = e.data.get("error", "")
        elif e.type == "delivery.completed":
            state.claim = None
            state.outcome = SendOutcome.model_validate(e.data["outcome"])
    return state


def _meta(correlation: str) -> dict[str, Any]:
    return {"source": "delivery", "correlation_id": correlation}


def claimed(delivery_id: str, channel: str, correlation: str) -> NewEvent:
    # a fresh id per attempt: a lost race is a ConcurrencyError, never a silent duplicate
    return NewEvent(
        "delivery.claimed",
        {"channel": channel},
        _meta(correlation),
        event_id=f"delivery.claimed/{delivery_id}/{uuid.uuid4().hex}",
    )


def released(delivery_id: str, channel: str, error: dict[str, Any], correlation: str) -> NewEvent:
    return NewEvent(
        "delivery.released",
        {"channel": channel, "error": error},
        _meta(correlation),
        event_id=f"delivery.released/{delivery_id}/{uuid.uuid4().hex}",
    )


def channel_failed(
    delivery_id: str, channel: str, error: str, detail: dict[str, Any], correlation: str
) -> NewEvent:
    return NewEvent(
        "delivery.channel_failed",
        {"channel": channel, "error": error, "detail": detail},
        _meta(correlation),
        event_id=f"delivery.channel_failed/{delivery_id}/{channel}",
    )


def completed(delivery_id: str, outcome: SendOutcome, correlation: str, **extra: Any) -> NewEvent:
    return NewEvent(
        "delivery.completed",
        {"outcome": outcome.model_dump(mode="json"), **extra},
        _meta(correlation),
        event_id=f"delivery.completed/{delivery_id}",
    )
