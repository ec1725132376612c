"""The `deliver` activity: policies, templates, the never-double-send claim, the provider
call, the outcome events and channel fallback.

One call handles one `SendRequest` (see `journeyman.engine.contracts.delivery`):

1. **Settled?** The delivery's stream (`claims.py`) may already hold its final outcome
   (returned as is) or a claim with no outcome: that one is reconciled with the provider
   (`reconcile.py`) — never re-sent blindly.
2. **Member.** An erased member, or a holdout, is `suppressed`.
3. **Channel.** The first channel in the request's fallback order that is registered,
   configured, not paused, not suppressed for the member, consented to for the purpose, and
   for which the member has a contact point ("push" means Web Push, then FCM). None left:
   `suppressed` (the member said no, or cannot be reached) or `failed` (a channel failed).
4. **Quiet hours** (marketing): inside them in the member's time zone, `deferred` until
   they end; the journey sleeps durably and sends again.
5. **Route.** With channel queues on, the main queue's call stops here and answers `routed`
   with the channel's task queue; the journey kit calls `deliver` again on that queue, where
   Temporal enforces the channel's rate limit, and that call runs every step again.
6. **Frequency cap** (marketing) and **claim**, in one transaction: a per-member advisory
   lock, the rolling-window count, the cap row, and the `delivery.claimed` append at the
   version read in step 1. Capped: `deferred` until a slot frees up.
7. **Render** the template for the channel's kind in the member's locale, with signed
   click-tracking, open and unsubscribe links.
8. **Send**, one attempt. `TransientError`: the claim is released and a retryable
   `ApplicationError` goes back to Temporal (honouring Retry-After). `AmbiguousError`: the
   claim stays open, marked uncertain, and a retryable error goes back to Temporal, whose
   next attempt reconciles (step 1); a channel that cannot reconcile, or any unexpected
   error from a channel, is `in_doubt` at once. `PermanentError`: its action
   (suppress the channel, drop the push subscription, consent off, pause the channel),
   `message.failed` for that channel, then the next channel (back to step 3).
9. **Record** `delivery.completed` and `message.sent` (and the ledger row) in one
   transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping

from journeyman.channels import (
    AmbiguousError,
    Channel,
    ChannelError,
    Message,
    PermanentError,
    TransientError,
)
from journeyman.engine.contracts.delivery import SendOutcome, SendRequest, delivery_id
from journeyman.engine.core import metrics
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import get_contact_points
from journeyman.engine.profiles import get_profile
from journeyman.event_store import PostgresEventStore
from temporalio import activity
from temporalio.exceptions import ApplicationError

from . import claims
from . import reconcile as reconciling
from .choice import (
    PUSH_CHANNELS,
    Candidate,
    SendContext,
    check,
    expand,
    load_blocks,
    load_pauses,
    quiet_until,
)
from .outcomes import LOST_RACE, contended
from .parts import DeliveryParts
from .permanent import apply_permanent
from .policies import FrequencyCap
from .templates import TemplateError, TemplateMissing, Templates

log = logging.getLogger(__name__)

__all__ = ["PUSH_CHANNELS", "Deliverer"]


class Deliverer(DeliveryParts):
    """Delivers `SendRequest`s through `channels` (configured channel instances by name).

    `channel_queues` says whether channel workers poll each channel's task queue (the
    worker sets it); without them every step runs in the calling activity. `clock` is for
    tests of time-dependent policies.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        channels: Mapping[str, Channel],
        *,
        settings: Settings | None = None,
        templates: Templates | None = None,
        channel_queues: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__(store, channels, settings=settings, templates=templates, clock=clock)
        self.channel_queues = channel_queues and self.config.channel_queues
        self.cap = FrequencyCap(store.pool, self.config.frequency_cap, self.config.frequency_window)

    async def deliver(self, request: SendRequest) -> SendOutcome:
        did = delivery_id(request)
        queue = activity.info().task_queue if activity.in_activity() else None
        for _ in range(4 * len(request.channels) + 4):
            state = await claims.load(self.store, did)
            if state.outcome is not None:
                return await self.outcomes.with_position(state.outcome)
            if state.claim is not None:
                return await reconciling.reconcile(self, request, did, state)
            result = await self._attempt(request, did, state, queue)
            if result is not None:
                return result
        raise ApplicationError(f"delivery {did} did not settle", type="DeliveryLoop")

    async def _attempt(
        self, request: SendRequest, did: str, state: claims.DeliveryState, queue: str | None
    ) -> SendOutcome | None:
        """One pass of steps 2-9; None means: state changed, look again."""
        now = self.clock().astimezone(dt.UTC)  # UTC: aware arithmetic elsewhere is wall-clock
        pool = self.store.pool
        outcomes = self.outcomes
        profile, contacts, blocks, pauses = await asyncio.gather(
            get_profile(pool, request.member_id, settings=self.settings),
            get_contact_points(pool, request.member_id, keyring=self.keyring),
            load_blocks(pool, request.member_id),
            load_pauses(pool, now),
        )
        if request.holdout:
            return await outcomes.final(request, did, state, "suppressed", reason="holdout")
        if profile is not None and profile.erased:
            return await outcomes.final(request, did, state, "suppressed", reason="member erased")
        ctx = SendContext(
            request=request,
            did=did,
            now=now,
            profile=profile,
            contacts=contacts,
            blocks=blocks,
            pauses=pauses,
            render_at=state.first_rendered_at,
        )
        candidates = [
            check(ctx, name, state, self.channels, self.config)
            for name in expand(request.channels, self.channels)
        ]
        chosen = next((c for c in candidates if c.skip is None), None)
        if chosen is None:
            return await self._nobody(request, did, state, candidates, ctx)
        assert chosen.channel is not None and chosen.contact is not None
        marketing = request.purpose == "marketing"
        if marketing:
            until = quiet_until(ctx, chosen.name, self.config)
            if until is not None:
                return await outcomes.defer(request, did, chosen.name, until, "quiet hours")
        if self.channel_queues and queue != chosen.channel.task_queue:
            return SendOutcome(
                status="routed",
                delivery_id=did,
                channel=chosen.name,
                task_queue=chosen.channel.task_queue,
                reason=f"to the {chosen.name} task queue",
            )
        # Frequency cap and claim, atomically.
        try:
            capped_until = await self._claim(
                request, did, state, chosen, marketing, now, ctx.render_at or now
            )
        except LOST_RACE:
            why = contended(did, "another attempt holds the claim")
            return await outcomes.recorded_elsewhere(did, why)
        if capped_until is not None:
            return await outcomes.defer(request, did, chosen.name, capped_until, "frequency cap")
        claim_version = state.version + 1
        try:
            message = self.message(ctx, chosen)
        except (TemplateMissing, TemplateError) as exc:
            await outcomes.channel_failed(request, did, claim_version, chosen.name, str(exc), {})
            return None
        return await self._send(request, did, claim_version, chosen, message)

    async def _nobody(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        candidates: list[Candidate],
        ctx: SendContext,
    ) -> SendOutcome | None:
        reason = "; ".join(c.skip or "" for c in candidates)
        paused = [
            ctx.pauses[c.channel.name] for c in candidates if c.blame == "pause" and c.channel
        ]
        if paused:  # not the member's fault: wait for the channel
            return await self.outcomes.defer(request, did, None, min(paused), reason)
        status = "failed" if any(c.blame == "channel" for c in candidates) else "suppressed"
        await self.cap.release(did)
        return await self.outcomes.final(request, did, state, status, reason=reason)

    async def _claim(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        chosen: Candidate,
        marketing: bool,
        now: dt.datetime,
        rendered_at: dt.datetime,
    ) -> dt.datetime | None:
        """Count the cap and claim the delivery in one transaction; the time the cap frees
        up when it is full (nothing claimed then)."""
        event = claims.claimed(did, chosen.name, request.workflow_id, rendered_at, claimed_at=now)
        stream = claims.stream_of(did)
        async with self.store.pool.acquire() as conn, conn.transaction():
            if marketing:
                decision = await self.cap.reserve(request.member_id, did, now, conn=conn)
                if not decision.allowed:
                    return decision.retry_at
            await self.store.append(stream, [event], state.expected, conn=conn)
        return None

    async def _send(
        self,
        request: SendRequest,
        did: str,
        claim_version: int,
        chosen: Candidate,
        message: Message,
    ) -> SendOutcome | None:
        channel = chosen.channel
        assert channel is not None
        try:
            with metrics.timed(metrics.PROVIDER_SECONDS, chosen.name):
                result = await channel.send(message, did)
        except TransientError as exc:
            await self.store.append(
                claims.stream_of(did),
                [claims.released(did, chosen.name, exc.to_dict(), request.workflow_id)],
                claim_version,
            )
            log.info(
                "delivery %s on %s: transient (%s), Temporal retries",
                did,
                chosen.name,
                type(exc).__name__,
            )
            raise ApplicationError(
                f"{chosen.name}: {exc.message}",
                exc.to_dict(),
                type="TransientError",
                next_retry_delay=(
                    dt.timedelta(seconds=exc.retry_after) if exc.retry_after else None
                ),
            ) from None
        except AmbiguousError as exc:
            if not channel.can_reconcile:
                return await self.outcomes.in_doubt(
                    request, did, claim_version, chosen.name, exc.message
                )
            await reconciling.uncertain_send(
                self, request, did, claim_version, chosen.name, exc, exc.to_dict()
            )
            raise  # not reached: uncertain_send raises for Temporal
        except PermanentError as exc:
            await apply_permanent(
                self.store,
                request,
                chosen,
                exc,
                keyring=self.keyring,
                config=self.config,
                clock=self.clock,
            )
            await self.outcomes.channel_failed(
                request, did, claim_version, chosen.name, exc.message, exc.to_dict()
            )
            return None
        except ChannelError as exc:  # a plugin's own subclass of the base: treat as ambiguous
            return await self.outcomes.in_doubt(
                request, did, claim_version, chosen.name, exc.message
            )
        except Exception as exc:  # a bug in a channel: it may have sent
            log.error("delivery %s: channel %s raised %s", did, chosen.name, type(exc).__name__)
            return await self.outcomes.in_doubt(
                request, did, claim_version, chosen.name, f"{type(exc).__name__} in channel"
            )
        return await self.outcomes.sent(
            request, did, claim_version, chosen.name, channel.name, result
        )
