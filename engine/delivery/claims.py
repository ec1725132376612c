"""The never-double-send record of one delivery: the stream `delivery-<id>`.

    delivery.claimed         {channel, rendered_at,  we are about to call the provider
                              claimed_at}
    delivery.uncertain       {channel, stage, error} the provider's answer (stage "send") or
                                                     a lookup (stage "reconcile") could not
                                                     say whether it took the message
    delivery.released        {channel, error}    the provider certainly did not take it
    delivery.channel_failed  {channel, error}    permanent failure on that channel
    delivery.completed       {outcome}           the final SendOutcome

Each append names the version it expects, so two attempts cannot both claim. A claim with no
release or outcome after it means an attempt called the provider and nobody knows whether
the message left (the provider answered ambiguously, or the attempt crashed or lost its
database). Such a delivery is never re-sent blindly: it is reconciled with the provider
(`Channel.reconcile`) — found: `sent`; certainly not there: released, so the next attempt
claims again and sends under the same delivery id; cannot tell: asked again later, a
bounded number of times — and settled as `in_doubt` when the channel cannot reconcile.

`rendered_at` is the time the first attempt rendered the message: every attempt renders with
it, so a re-send carries the same text and links, and a lookup matches what was sent.
`claimed_at` is the time of this very claim: reconciliation measures its grace from it, so a
retry's claim gets the full grace however long ago the first attempt ran.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from journeyman.engine.contracts.delivery import SendOutcome
from journeyman.event_store import NO_STREAM, NewEvent, PostgresEventStore
from journeyman.event_store.model import ExpectedVersion

NOT_AT_PROVIDER = "NotAtProvider"  # a release after a lookup found nothing


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
    first_rendered_at: dt.datetime | None = None  # of the first claim
    claimed_at: dt.datetime | None = None  # of the open claim
    uncertain: bool = False  # the open claim's send got an ambiguous answer
    inconclusive: int = 0  # lookups that could not tell
    resent: int = 0  # releases after the provider certainly did not have the message

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
            state.uncertain = False
            rendered = _when(e.data.get("rendered_at")) or e.recorded_at
            # Claims written before `claimed_at` existed: the append's own time.
            state.claimed_at = _when(e.data.get("claimed_at")) or e.recorded_at
            if state.first_rendered_at is None:
                state.first_rendered_at = rendered
        elif e.type == "delivery.uncertain":
            if e.data.get("stage") == "reconcile":
                state.inconclusive += 1
            else:
                state.uncertain = True
        elif e.type == "delivery.released":
            state.claim = None
            if (e.data.get("error") or {}).get("type") == NOT_AT_PROVIDER:
                state.resent += 1
        elif e.type == "delivery.channel_failed":
            state.claim = None
            state.failed[e.data["channel"]] = e.data.get("error", "")
        elif e.type == "delivery.completed":
            state.claim = None
            state.outcome = SendOutcome.model_validate(e.data["outcome"])
    return state


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _meta(correlation: str) -> dict[str, Any]:
    return {"source": "delivery", "correlation_id": correlation}


def claimed(
    delivery_id: str,
    channel: str,
    correlation: str,
    rendered_at: dt.datetime | None = None,
    claimed_at: dt.datetime | None = None,
) -> NewEvent:
    # a fresh id per attempt: a lost race is a ConcurrencyError, never a silent duplicate
    data: dict[str, Any] = {"channel": channel}
    if rendered_at is not None:
        data["rendered_at"] = rendered_at.isoformat()
    if claimed_at is not None:
        data["claimed_at"] = claimed_at.isoformat()
    return NewEvent(
        "delivery.claimed",
        data,
        _meta(correlation),
        event_id=f"delivery.claimed/{delivery_id}/{uuid.uuid4().hex}",
    )


def uncertain(
    delivery_id: str, channel: str, stage: str, error: dict[str, Any], correlation: str
) -> NewEvent:
    return NewEvent(
        "delivery.uncertain",
        {"channel": channel, "stage": stage, "error": error},
        _meta(correlation),
        event_id=f"delivery.uncertain/{delivery_id}/{uuid.uuid4().hex}",
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
