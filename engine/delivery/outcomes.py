"""Recording how a delivery ended, or why it waits: the outcome on the delivery's stream
and the member's message events, in one transaction.

A final outcome (`sent`, `suppressed`, `failed`, `in_doubt`) is appended at the version
the caller read, so of two attempts racing to settle the same delivery exactly one records;
the loser gets `ConcurrencyError`/`StaleTransactionError` and reads the winner's outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from journeyman.channels import DeliveryResult
from journeyman.engine.contracts.delivery import SendOutcome, SendRequest
from journeyman.event_store import (
    ConcurrencyError,
    NewEvent,
    PostgresEventStore,
    StaleTransactionError,
)
from journeyman.event_store.model import AppendResult
from journeyman.event_store.retry import retry_unless
from temporalio.exceptions import ApplicationError

from . import claims
from .recording import message_event, record

log = logging.getLogger("journeyman.engine.delivery.service")

LOST_RACE = (ConcurrencyError, StaleTransactionError)


def about(request: SendRequest, did: str) -> dict[str, Any]:
    """The fields every message event of a delivery carries."""
    return {
        "delivery_id": did,
        "journey": request.journey,
        "step": request.step,
        "variant": request.variant,
        "template": request.template,
        "purpose": request.purpose,
        "workflow_id": request.workflow_id,
        "entry_id": request.entry_id,
    }


class Outcomes:
    """Writes a delivery's outcomes to `store`; `clock` stamps `sent_at`."""

    def __init__(self, store: PostgresEventStore, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.clock = clock

    async def record_final(
        self,
        request: SendRequest,
        did: str,
        expected: int,
        outcome: SendOutcome,
        events: list[NewEvent],
        **extra: Any,
    ) -> list[AppendResult]:
        """The outcome at `expected` on the delivery's stream, with `events` on the member's.
        A database error is tried again a few times; if it persists the claim stays open
        and the next attempt settles it as in doubt. A lost race is raised at once."""
        done = claims.completed(did, outcome, request.workflow_id, **extra)
        also = [(claims.stream_of(did), [done], expected if expected >= 0 else claims.NO_STREAM)]
        return await retry_unless(
            lambda: record(self.store, request.member_id, events, also=also),
            unless=LOST_RACE,
            attempts=5,
            pause=0.2,
        )

    async def sent(
        self,
        request: SendRequest,
        did: str,
        claim_version: int,
        name: str,
        via: str,
        result: DeliveryResult,
    ) -> SendOutcome:
        """Record the provider's acceptance: `delivery.completed` and `message.sent`."""
        sent_at = self.clock().astimezone(dt.UTC)
        outcome = SendOutcome(
            status="sent", delivery_id=did, channel=name, reason=result.status, sent_at=sent_at
        )
        data = {
            **about(request, did),
            "channel": name,
            "via": via,
            "provider_message_id": result.provider_message_id,
        }
        if result.detail.get("reconciled"):
            data["reconciled"] = True
        stored = await self.record_final(
            request,
            did,
            claim_version,
            outcome,
            [message_event("message.sent", f"message.sent/{did}", data, occurred_at=sent_at)],
            provider_message_id=result.provider_message_id,
        )
        log.info("delivery %s sent on %s", did, name)
        # The member's events come last in what `record` returns.
        return outcome.model_copy(update={"position": stored[-1].global_position})

    async def with_position(self, outcome: SendOutcome) -> SendOutcome:
        """A recorded `sent` outcome, again with the position of its `message.sent` event
        (the same answer the first call gave)."""
        if outcome.status != "sent" or outcome.position is not None:
            return outcome
        position = await self.store.pool.fetchval(
            "SELECT global_position FROM events WHERE event_id = $1",
            f"message.sent/{outcome.delivery_id}",
        )
        return outcome.model_copy(update={"position": position})

    async def final(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        status: str,
        *,
        reason: str,
    ) -> SendOutcome:
        """`suppressed` or `failed` for good; another attempt's outcome if it got there
        first."""
        outcome = SendOutcome(status=status, delivery_id=did, reason=reason)  # type: ignore[arg-type]
        event_type = "message.suppressed" if status == "suppressed" else "message.failed"
        data = {**about(request, did), "reason": reason, "final": True}
        try:
            await self.record_final(
                request,
                did,
                state.version,
                outcome,
                [message_event(event_type, f"{event_type}/{did}", data)],
            )
        except LOST_RACE as lost:
            return await self.recorded_elsewhere(did, lost)
        log.info("delivery %s %s", did, status)
        return outcome

    async def defer(
        self,
        request: SendRequest,
        did: str,
        channel: str | None,
        until: dt.datetime,
        reason: str,
    ) -> SendOutcome:
        """Not now: `message.deferred`; the journey sleeps until `until` and asks again."""
        stamp = int(until.timestamp())
        data = {
            **about(request, did),
            "channel": channel,
            "reason": reason,
            "defer_until": until.isoformat(),
        }
        await record(
            self.store,
            request.member_id,
            [message_event("message.deferred", f"message.deferred/{did}/{stamp}", data)],
        )
        return SendOutcome(
            status="deferred", delivery_id=did, channel=channel, defer_until=until, reason=reason
        )

    async def channel_failed(
        self,
        request: SendRequest,
        did: str,
        claim_version: int,
        channel: str,
        error: str,
        detail: dict[str, Any],
    ) -> None:
        """One channel failed for good (the delivery goes on to the next one): its
        `message.failed` and the released claim."""
        data = {
            **about(request, did),
            "channel": channel,
            "reason": error,
            "error": detail.get("type", "TemplateError"),
            "final": False,
        }
        await record(
            self.store,
            request.member_id,
            [message_event("message.failed", f"message.failed/{did}/{channel}", data)],
            also=[
                (
                    claims.stream_of(did),
                    [claims.channel_failed(did, channel, error, detail, request.workflow_id)],
                    claim_version,
                )
            ],
        )
        log.info(
            "delivery %s failed permanently on %s (%s)",
            did,
            channel,
            detail.get("type", "template"),
        )

    async def in_doubt(
        self, request: SendRequest, did: str, expected: int, channel: str | None, reason: str
    ) -> SendOutcome:
        """The provider may or may not have the message, and nobody can find out."""
        outcome = SendOutcome(status="in_doubt", delivery_id=did, channel=channel, reason=reason)
        data = {**about(request, did), "channel": channel, "reason": reason}
        await self.record_final(
            request,
            did,
            expected,
            outcome,
            [message_event("message.in_doubt", f"message.in_doubt/{did}", data)],
        )
        log.warning("delivery %s on %s is in doubt: %s", did, channel, reason)
        return outcome

    async def settle_in_doubt(
        self, request: SendRequest, did: str, state: claims.DeliveryState, reason: str
    ) -> SendOutcome:
        """`in_doubt` for an open claim; another attempt's outcome if it got there first."""
        channel = (state.claim or {}).get("channel")
        try:
            return await self.in_doubt(request, did, state.version, channel, reason)
        except LOST_RACE as lost:
            return await self.recorded_elsewhere(did, lost)

    async def recorded_elsewhere(self, did: str, otherwise: Exception) -> SendOutcome:
        """The outcome another attempt recorded when it won a race to the delivery's stream;
        `otherwise` is raised when there is none (the race was lost to something else, or
        the other attempt is still at work: see `contended`)."""
        fresh = await claims.load(self.store, did)
        if fresh.outcome is not None:
            return fresh.outcome
        raise otherwise


def contended(did: str, why: str) -> ApplicationError:
    """A retryable error for Temporal: another attempt holds the delivery for now."""
    return ApplicationError(
        f"delivery {did}: {why}", type="ClaimContended", next_retry_delay=dt.timedelta(seconds=2)
    )
