"""Reconciling ambiguous sends: a delivery whose claim has no outcome is asked about, not
re-sent blindly and not given up on.

A claim stays open when the provider's answer could not say whether it took the message (an
`AmbiguousError`: a 5xx or a timeout after the request was written) or when the attempt
that made it vanished (a worker killed mid-call). The next attempt of the `deliver`
activity renders the same message again (with the first attempt's render time, so text and
links are identical) and calls the channel's `reconcile`:

- **found** — the provider has it: `message.sent` with the provider's id, exactly once (the
  outcome is appended at the claim's version, so only one attempt can record it);
- **certainly not there** — the claim is released (`delivery.released`, `NotAtProvider`) and
  a retryable error goes back to Temporal; the next attempt claims again and sends under the
  same delivery id and idempotency key. After `reconcile_resends` such releases the delivery
  is `failed` instead. A claim left by an attempt that vanished (no answer recorded) is only
  released once it is older than `reconcile_grace`, so an attempt still in flight on a
  stalled worker is not raced by a second send;
- **cannot tell now** (the lookup raised `AmbiguousError` or `TransientError`) —
  `delivery.uncertain` (stage `reconcile`) and a retryable error: Temporal asks again later.
  The `reconcile_attempts`-th such answer settles the delivery as `in_doubt`;
- **the channel cannot reconcile** (`ReconcileUnsupported`: SMTP has no lookup), the contact
  point or template is gone, or the lookup failed permanently — `in_doubt`, as before.

Each lookup logs one line (delivery id, channel, result; no personal data) and counts
`journeyman_reconciliations_total{channel, result}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from journeyman.channels import (
    AmbiguousError,
    ChannelMisconfigured,
    ReconcileUnsupported,
    TransientError,
)
from journeyman.engine.contracts.delivery import SendOutcome, SendRequest
from journeyman.engine.core.metrics import RECONCILIATIONS
from journeyman.engine.identity import get_contact_points
from journeyman.engine.profiles import get_profile
from temporalio.exceptions import ApplicationError

from . import claims
from .choice import Candidate, SendContext, contact_for, route_channel
from .outcomes import LOST_RACE, about, contended
from .parts import DeliveryParts
from .recording import message_event
from .templates import TemplateError, TemplateMissing

log = logging.getLogger("journeyman.engine.delivery.reconcile")


def _count(channel: str, result: str, did: str) -> None:
    RECONCILIATIONS.labels(channel, result).inc()
    log.info("delivery %s on %s reconciled: %s", did, channel, result)


async def reconcile(
    d: DeliveryParts, request: SendRequest, did: str, state: claims.DeliveryState
) -> SendOutcome:
    """Settle or retry a delivery whose claim has no outcome (see the module docstring).
    Returns the outcome, or raises a retryable `ApplicationError` for Temporal."""
    claim = state.claim or {}
    name = str(claim.get("channel") or "")
    why = (
        "the provider's answer was ambiguous"
        if state.uncertain
        else "an earlier attempt called the provider and recorded no outcome"
    )
    try:
        channel = route_channel(d.channels, name, d.config)
    except ChannelMisconfigured:
        return await d.outcomes.settle_in_doubt(
            request, did, state, f"{why}; {name} is not available"
        )
    if not channel.can_reconcile:
        _count(name, "unsupported", did)
        return await d.outcomes.settle_in_doubt(
            request, did, state, f"{why}; {name} cannot look up sent messages"
        )
    now = d.clock().astimezone(dt.UTC)
    pool = d.store.pool
    profile, contacts = await asyncio.gather(
        get_profile(pool, request.member_id, settings=d.settings),
        get_contact_points(pool, request.member_id, keyring=d.keyring),
    )
    ctx = SendContext(
        request=request,
        did=did,
        now=now,
        profile=profile,
        contacts=contacts,
        blocks={},
        pauses={},
        render_at=state.first_rendered_at,
    )
    chosen = Candidate(
        name, channel=channel, contact=contact_for(channel, contacts, request.member_id)
    )
    if chosen.contact is None:
        return await d.outcomes.settle_in_doubt(
            request, did, state, f"{why}; the member's contact point is gone"
        )
    try:
        message = d.message(ctx, chosen)
    except (TemplateMissing, TemplateError):
        return await d.outcomes.settle_in_doubt(request, did, state, f"{why}; the template is gone")

    try:
        found = await channel.reconcile(message, did)
    except ReconcileUnsupported:
        _count(name, "unsupported", did)
        return await d.outcomes.settle_in_doubt(
            request, did, state, f"{why}; {name} cannot look up sent messages"
        )
    except (AmbiguousError, TransientError) as exc:
        _count(name, "unknown", did)
        return await _cannot_tell(d, request, did, state, name, exc.to_dict(), exc.retry_after)
    except Exception as exc:  # a permanent lookup failure, or a bug in the channel
        _count(name, "error", did)
        return await d.outcomes.settle_in_doubt(
            request, did, state, f"{why}; the lookup failed ({type(exc).__name__})"
        )

    if found is not None:
        _count(name, "found", did)
        try:
            return await d.outcomes.sent(request, did, state.version, name, channel.name, found)
        except LOST_RACE:
            return await _settled_elsewhere(d, did)

    _count(name, "not_found", did)
    if not state.uncertain:
        # The attempt that claimed left no answer: it may still be in flight on a stalled
        # worker. Trust "not there" only once that attempt must have ended.
        claimed_at = state.claimed_at or now
        wait = claimed_at + d.config.reconcile_grace - now
        if wait > dt.timedelta(0):
            raise ApplicationError(
                f"delivery {did}: not at the provider yet; the claiming attempt may still run",
                type="ReconcilePending",
                next_retry_delay=wait,
            )
    if state.resent >= d.config.reconcile_resends:
        reason = (
            f"{name}: the provider answered ambiguously {state.resent + 1} times and "
            "never took the message"
        )
        outcome = SendOutcome(status="failed", delivery_id=did, channel=name, reason=reason)
        data = {**about(request, did), "channel": name, "reason": reason, "final": True}
        try:
            await d.outcomes.record_final(
                request,
                did,
                state.version,
                outcome,
                [message_event("message.failed", f"message.failed/{did}", data)],
            )
        except LOST_RACE:
            return await _settled_elsewhere(d, did)
        return outcome
    error: dict[str, Any] = {"type": claims.NOT_AT_PROVIDER, "reconciled": True}
    try:
        await d.store.append(
            claims.stream_of(did),
            [claims.released(did, name, error, request.workflow_id)],
            state.version,
        )
    except LOST_RACE:
        return await _settled_elsewhere(d, did)
    raise ApplicationError(
        f"delivery {did}: {name} does not have the message; sending again",
        error,
        type=claims.NOT_AT_PROVIDER,
        next_retry_delay=d.config.reconcile_interval,
    )


async def _cannot_tell(
    d: DeliveryParts,
    request: SendRequest,
    did: str,
    state: claims.DeliveryState,
    name: str,
    error: dict[str, Any],
    retry_after: float | None,
) -> SendOutcome:
    if state.inconclusive + 1 >= d.config.reconcile_attempts:
        return await d.outcomes.settle_in_doubt(
            request,
            did,
            state,
            f"{name} could not say whether it took the message ({state.inconclusive + 1} lookups)",
        )
    try:
        await d.store.append(
            claims.stream_of(did),
            [claims.uncertain(did, name, "reconcile", error, request.workflow_id)],
            state.version,
        )
    except LOST_RACE:
        return await _settled_elsewhere(d, did)
    delay = d.config.reconcile_interval * (state.inconclusive + 1)
    if retry_after:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    raise ApplicationError(
        f"delivery {did}: {name} cannot tell now whether it took the message",
        error,
        type="ReconcilePending",
        next_retry_delay=delay,
    )


async def uncertain_send(
    d: DeliveryParts,
    request: SendRequest,
    did: str,
    claim_version: int,
    name: str,
    exc: Exception,
    error: dict[str, Any],
) -> None:
    """An ambiguous answer to a send through a channel that can reconcile: note it on the
    claim and hand the delivery back to Temporal, whose next attempt reconciles."""
    await d.store.append(
        claims.stream_of(did),
        [claims.uncertain(did, name, "send", error, request.workflow_id)],
        claim_version,
    )
    log.warning(
        "delivery %s on %s: ambiguous answer (%s), reconciling", did, name, type(exc).__name__
    )
    retry_after = error.get("retry_after")
    delay = d.config.reconcile_interval
    if retry_after:
        delay = max(delay, dt.timedelta(seconds=float(retry_after)))
    raise ApplicationError(
        f"{name}: the provider may have taken the message; reconciling",
        error,
        type="ReconcilePending",
        next_retry_delay=delay,
    )


async def _settled_elsewhere(d: DeliveryParts, did: str) -> SendOutcome:
    settling = contended(did, "another attempt is settling it")
    return await d.outcomes.recorded_elsewhere(did, settling)


__all__ = ["reconcile", "uncertain_send"]
