"""The development implementation of `deliver`: a local outbox in the event store.

Each delivery is its own stream `delivery-<id>`, claimed with `NO_STREAM` in the same
transaction that appends `message.sent` to the member's stream. A retried activity finds
the stream and returns the outcome recorded there; nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt

from journeyman.engine.contracts.delivery import SendOutcome, SendRequest, delivery_id
from journeyman.event_store import ANY, NO_STREAM, ConcurrencyError, NewEvent, PostgresEventStore
from temporalio import activity


class OutboxDelivery:
    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store

    async def recorded(self, did: str) -> SendOutcome | None:
        events = await self.store.read_stream(f"delivery-{did}", limit=1)
        if not events:
            return None
        return SendOutcome.model_validate(events[0].data["outcome"])

    async def deliver(self, request: SendRequest) -> SendOutcome:
        did = delivery_id(request)
        found = await self.recorded(did)
        if found is not None:
            return found
        channel = request.channels[0]
        # Sent when the attempt was scheduled, on the Temporal server's clock: the clock the
        # journey reads too (it may run ahead of the wall clock on a time-skipping server).
        if activity.in_activity():
            sent_at = activity.info().current_attempt_scheduled_time
        else:
            sent_at = dt.datetime.now(dt.UTC)
        outcome = SendOutcome(
            status="sent",
            delivery_id=did,
            channel=channel,
            reason="delivered to local outbox",
            sent_at=sent_at,
        )
        meta = {"source": "journey", "correlation_id": request.workflow_id}
        claim = NewEvent(
            "delivery.recorded",
            {
                "request": request.model_dump(mode="json"),
                "outcome": outcome.model_dump(mode="json"),
            },
            meta,
            event_id=f"delivery/{did}",
        )
        sent = NewEvent(
            "message.sent",
            {
                "delivery_id": did,
                "journey": request.journey,
                "step": request.step,
                "variant": request.variant,
                "channel": channel,
                "template": request.template,
                "purpose": request.purpose,
                "workflow_id": request.workflow_id,
                "entry_id": request.entry_id,
            },
            meta,
            event_id=f"message.sent/{did}",
            occurred_at=sent_at,
        )
        try:
            results = await self.store.append_batch(
                [
                    (f"delivery-{did}", [claim], NO_STREAM),
                    (f"member-{request.member_id}", [sent], ANY),
                ]
            )
        except ConcurrencyError:
            pass  # a concurrent attempt recorded it first: its outcome is the outcome
        else:
            return outcome.model_copy(update={"position": results[1].global_position})
        found = await self.recorded(did)
        assert found is not None, f"delivery {did} was appended but cannot be read back"
        return found
