"""The `deliver` activity: policies, templates, the never-double-send claim, the provider
call, the outcome events and channel fallback.

One call handles one `SendRequest` (see `journeyman.engine.activities.delivery_contract`):

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
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from journeyman.channels import (
    AmbiguousError,
    Channel,
    ChannelError,
    ChannelMisconfigured,
    ContactKind,
    DeliveryResult,
    Message,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    RecipientUnsubscribed,
    TransientError,
    route,
)
from journeyman.engine import metrics
from journeyman.engine.activities.delivery_contract import SendOutcome, SendRequest, delivery_id
from journeyman.engine.crypto import Keyring
from journeyman.engine.identity import get_contact_points
from journeyman.engine.profile_model import MemberProfile
from journeyman.engine.profiles import get_profile
from journeyman.engine.settings import Settings
from journeyman.event_store import ConcurrencyError, PostgresEventStore, StaleTransactionError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from . import claims
from . import reconcile as reconciling
from .config import DeliverySettings
from .links import LinkSigner
from .policies import FrequencyCap, consent_allows, quiet_hours_end, zone
from .recording import Block, message_event, record
from .templates import TemplateError, TemplateMissing, Templates, kind_for

log = logging.getLogger(__name__)

PUSH_CHANNELS = ("webpush", "fcm")


@dataclass
class _Candidate:
    name: str
    channel: Channel | None = None
    contact: str | None = None
    skip: str | None = None
    blame: str = "member"  # "member": suppressed; "channel": failed / deferred


@dataclass
class _Context:
    request: SendRequest
    did: str
    now: dt.datetime
    profile: MemberProfile | None
    contacts: dict[str, Any]
    blocks: dict[tuple[str, str], str]
    pauses: dict[str, dt.datetime]
    render_at: dt.datetime | None = None  # the first attempt's render time, once claimed


class Deliverer:
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
        from journeyman.engine.settings import get_settings

        self.store = store
        self.channels = dict(channels)
        self.settings = settings or get_settings()
        self.config: DeliverySettings = self.settings.delivery
        secret = self.settings.resolved_secret()
        self.keyring = Keyring(secret)
        self.links = LinkSigner(secret, self.config.public_url)
        self.templates = templates or Templates(
            self.config.templates_dir, default_locale=self.config.default_locale
        )
        self.channel_queues = channel_queues and self.config.channel_queues
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.cap = FrequencyCap(store.pool, self.config.frequency_cap, self.config.frequency_window)

    # ------------------------------------------------------------------ entry point
    async def deliver(self, request: SendRequest) -> SendOutcome:
        did = delivery_id(request)
        queue = activity.info().task_queue if activity.in_activity() else None
        for _ in range(4 * len(request.channels) + 4):
            state = await claims.load(self.store, did)
            if state.outcome is not None:
                return await self._with_position(state.outcome)
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
        profile, contacts, blocks, pauses = await asyncio.gather(
            get_profile(pool, request.member_id, settings=self.settings),
            get_contact_points(pool, request.member_id, keyring=self.keyring),
            self._blocks(request.member_id),
            self._pauses(now),
        )
        if request.holdout:
            return await self._final(request, did, state, "suppressed", reason="holdout")
        if profile is not None and profile.erased:
            return await self._final(request, did, state, "suppressed", reason="member erased")
        ctx = _Context(
            request=request,
            did=did,
            now=now,
            profile=profile,
            contacts=contacts,
            blocks=blocks,
            pauses=pauses,
            render_at=state.first_rendered_at,
        )
        candidates = [self._check(ctx, name, state) for name in self._expand(request.channels)]
        chosen = next((c for c in candidates if c.skip is None), None)
        if chosen is None:
            return await self._nobody(request, did, state, candidates, ctx)
        assert chosen.channel is not None and chosen.contact is not None
        marketing = request.purpose == "marketing"
        if marketing:
            until = self._quiet_until(ctx, chosen.name)
            if until is not None:
                return await self._defer(request, did, chosen.name, until, "quiet hours")
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
        except (ConcurrencyError, StaleTransactionError):
            fresh = await claims.load(self.store, did)
            if fresh.outcome is not None:
                return fresh.outcome
            raise ApplicationError(
                f"delivery {did}: another attempt holds the claim",
                type="ClaimContended",
                next_retry_delay=dt.timedelta(seconds=2),
            ) from None
        if capped_until is not None:
            return await self._defer(request, did, chosen.name, capped_until, "frequency cap")
        claim_version = state.version + 1
        try:
            message = self._message(ctx, chosen)
        except (TemplateMissing, TemplateError) as exc:
            await self._channel_failed(request, did, claim_version, chosen.name, str(exc), {})
            return None
        return await self._send(request, did, claim_version, chosen, message)

    # ------------------------------------------------------------------ channel choice
    def _expand(self, names: list[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            group = PUSH_CHANNELS if name == "push" and name not in self.channels else (name,)
            for n in group:
                if n not in out:
                    out.append(n)
        return out

    def _check(self, ctx: _Context, name: str, state: claims.DeliveryState) -> _Candidate:
        cand = _Candidate(name)
        purpose = ctx.request.purpose
        if name in state.failed:
            cand.skip, cand.blame = f"{name} failed: {state.failed[name]}", "channel"
            return cand
        try:
            fallback = "outbox" if self.config.outbox_fallback else None
            cand.channel = route(self.channels, name, fallback=fallback)
        except ChannelMisconfigured as exc:
            cand.skip, cand.blame = exc.message, "channel"
            return cand
        paused = ctx.pauses.get(cand.channel.name)
        if paused is not None:
            cand.skip, cand.blame = (
                f"{cand.channel.name} paused until {paused.isoformat()}",
                "pause",
            )
            return cand
        profile = ctx.profile
        if profile is not None and name in profile.suppressed:
            cand.skip = f"{name} suppressed ({profile.suppressed[name]})"
            return cand
        block = ctx.blocks.get((name, purpose)) or ctx.blocks.get((name, "*"))
        if block is not None:
            cand.skip = f"{name} blocked ({block})"
            return cand
        if not consent_allows(profile, name, purpose, self.config.opt_in_channels):
            cand.skip = f"no consent for {name}:{purpose}"
            return cand
        cand.contact = self._contact(cand.channel, ctx)
        if cand.contact is None:
            cand.skip = f"no {cand.channel.contact} contact point for {name}"
        return cand

    def _contact(self, channel: Channel, ctx: _Context) -> str | None:
        c = ctx.contacts
        kind = channel.contact
        if kind == ContactKind.EMAIL:
            return c.get("email")
        if kind == ContactKind.PHONE:
            return c.get("phone")
        if kind in (ContactKind.WEB_PUSH, ContactKind.FCM_TOKEN):
            wanted = "webpush" if kind == ContactKind.WEB_PUSH else "fcm"
            for sub in c.get("push", []):
                if sub.get("type") == wanted:
                    if wanted == "fcm":
                        return sub.get("token")
                    return json.dumps({"endpoint": sub["endpoint"], "keys": sub.get("keys", {})})
            return None
        if kind == ContactKind.MEMBER:
            return ctx.request.member_id
        return c.get("email") or c.get("phone") or ctx.request.member_id

    async def _blocks(self, member_id: str) -> dict[tuple[str, str], str]:
        rows = await self.store.pool.fetch(
            "SELECT b.channel, b.purpose, b.reason FROM delivery_blocks b "
            "LEFT JOIN member_profiles p ON p.member_id = b.member_id "
            "WHERE b.member_id = $1 AND (p.last_position IS NULL OR b.position > p.last_position)",
            member_id,
        )
        blocks: dict[tuple[str, str], str] = {}
        for r in sorted(rows, key=lambda r: r["reason"]):
            key = (r["channel"], r["purpose"])
            blocks[key] = f"{blocks[key]}, {r['reason']}" if key in blocks else r["reason"]
        return blocks

    async def _pauses(self, now: dt.datetime) -> dict[str, dt.datetime]:
        rows = await self.store.pool.fetch(
            "SELECT channel, paused_until FROM channel_pauses WHERE paused_until > $1", now
        )
        return {r["channel"]: r["paused_until"] for r in rows}

    def _quiet_until(self, ctx: _Context, channel: str) -> dt.datetime | None:
        cfg = self.config
        if "*" not in cfg.quiet_hours_channels and channel not in cfg.quiet_hours_channels:
            return None
        tz = zone(ctx.profile.timezone if ctx.profile else None, cfg.default_timezone)
        return quiet_hours_end(ctx.now, tz, cfg.quiet_hours_start, cfg.quiet_hours_end)

    async def _nobody(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        candidates: list[_Candidate],
        ctx: _Context,
    ) -> SendOutcome | None:
        reason = "; ".join(c.skip or "" for c in candidates)
        paused = [
            ctx.pauses[c.channel.name] for c in candidates if c.blame == "pause" and c.channel
        ]
        if paused:  # not the member's fault: wait for the channel
            return await self._defer(request, did, None, min(paused), reason)
        status = "failed" if any(c.blame == "channel" for c in candidates) else "suppressed"
        await self.cap.release(did)
        return await self._final(request, did, state, status, reason=reason)

    # ------------------------------------------------------------------ claim and send
    async def _claim(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        chosen: _Candidate,
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

    def _message(self, ctx: _Context, chosen: _Candidate) -> Message:
        assert chosen.channel is not None and chosen.contact is not None
        request, did = ctx.request, ctx.did
        kind = kind_for(chosen.channel.contact)
        base = {"delivery_id": did, "member_id": request.member_id, "channel": chosen.name}
        cfg = self.config
        # every attempt renders as the first did: same text and links, re-sent or looked up
        at = ctx.render_at or ctx.now
        click_exp = at + cfg.click_link_ttl
        unsubscribe = None
        if request.purpose == "marketing":
            unsubscribe = self.links.unsubscribe_url(
                **base, expires_at=at + cfg.unsubscribe_link_ttl
            )

        def track(url: str) -> str:
            if not cfg.track_clicks or url.startswith(self.links.base_url):
                return url
            return self.links.click_url(url, **base, expires_at=click_exp)

        profile = ctx.profile
        context = {
            **request.context,
            "journey": request.journey,
            "variant": request.variant,
            "site_url": cfg.site_url,
            "unsubscribe_url": unsubscribe or "",
            "member": {
                "id": request.member_id,
                "locale": profile.locale if profile else None,
                "traits": dict(profile.traits) if profile else {},
            },
        }
        pixel = None
        if cfg.track_opens and kind == "email":
            pixel = self.links.open_url(**base, expires_at=click_exp)
        rendered = self.templates.render(
            request.template,
            kind,
            context,
            locale=profile.locale if profile else None,
            track=track,
            open_pixel=pixel,
            keep=frozenset({unsubscribe} if unsubscribe else ()),
        )
        return Message(
            to=chosen.contact,
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            title=rendered.title,
            data={"delivery_id": did, "journey": request.journey, "template": request.template},
            delivery_id=did,
            member_id=request.member_id,
            unsubscribe_url=unsubscribe if kind == "email" else None,
            metadata={"journey": request.journey, "template": request.template},
            first_attempt_at=ctx.render_at,
        )

    async def _send(
        self,
        request: SendRequest,
        did: str,
        claim_version: int,
        chosen: _Candidate,
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
                return await self._in_doubt(request, did, claim_version, chosen.name, exc.message)
            await reconciling.uncertain_send(
                self, request, did, claim_version, chosen.name, exc, exc.to_dict()
            )
            raise  # not reached: uncertain_send raises for Temporal
        except PermanentError as exc:
            await self._permanent(request, chosen, exc)
            await self._channel_failed(
                request, did, claim_version, chosen.name, exc.message, exc.to_dict()
            )
            return None
        except ChannelError as exc:  # a plugin's own subclass of the base: treat as ambiguous
            return await self._in_doubt(request, did, claim_version, chosen.name, exc.message)
        except Exception as exc:  # a bug in a channel: it may have sent
            log.error("delivery %s: channel %s raised %s", did, chosen.name, type(exc).__name__)
            return await self._in_doubt(
                request, did, claim_version, chosen.name, f"{type(exc).__name__} in channel"
            )
        return await self._sent(request, did, claim_version, chosen.name, channel.name, result)

    async def _with_position(self, outcome: SendOutcome) -> SendOutcome:
        """A recorded `sent` outcome, again with the position of its `message.sent` event
        (the same answer the first call gave)."""
        if outcome.status != "sent" or outcome.position is not None:
            return outcome
        position = await self.store.pool.fetchval(
            "SELECT global_position FROM events WHERE event_id = $1",
            f"message.sent/{outcome.delivery_id}",
        )
        return outcome.model_copy(update={"position": position})

    async def _sent(
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
            **self._about(request, did),
            "channel": name,
            "via": via,
            "provider_message_id": result.provider_message_id,
        }
        if result.detail.get("reconciled"):
            data["reconciled"] = True
        stored = await self._record_final(
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

    # ------------------------------------------------------------------ permanent errors
    async def _permanent(
        self, request: SendRequest, chosen: _Candidate, exc: PermanentError
    ) -> None:
        member, name = request.member_id, chosen.name
        did = delivery_id(request)
        if isinstance(exc, RecipientInvalid):
            await record(
                self.store,
                member,
                [
                    message_event(
                        "message.bounced",
                        f"message.bounced/{did}/{name}",
                        {
                            **self._about(request, did),
                            "channel": name,
                            "bounce_type": "hard",
                            "reason": exc.message,
                            "code": exc.code,
                        },
                    )
                ],
                blocks=[Block(name, "*", "recipient invalid")],
            )
        elif isinstance(exc, RecipientUnsubscribed):
            await record(
                self.store,
                member,
                [
                    message_event(
                        "member.unsubscribed",
                        f"member.unsubscribed/{did}/{name}",
                        {
                            "channel": name,
                            "purpose": "marketing",
                            "reason": "provider",
                            "delivery_id": did,
                        },
                    )
                ],
                blocks=[Block(name, "marketing", "unsubscribed at the provider")],
            )
        elif isinstance(exc, RecipientGone):
            removed = await self._drop_push(member, name, chosen.contact)
            await record(
                self.store,
                member,
                [
                    message_event(
                        "member.contact_removed",
                        f"member.contact_removed/{did}/{name}",
                        {
                            "channel": name,
                            "kind": "push",
                            "removed": removed,
                            "reason": "subscription gone",
                            "delivery_id": did,
                        },
                    )
                ],
            )
        elif isinstance(exc, ChannelMisconfigured):
            until = self.clock() + self.config.pause_after_misconfiguration
            await self.store.pool.execute(
                "INSERT INTO channel_pauses (channel, reason, paused_until, detail) "
                "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (channel) DO UPDATE SET "
                "reason = EXCLUDED.reason, paused_until = EXCLUDED.paused_until, "
                "detail = EXCLUDED.detail, created_at = now()",
                chosen.channel.name if chosen.channel else name,
                exc.message,
                until,
                json.dumps({"code": exc.code, "status": exc.status}),
            )
            log.error(
                "ALERT channel %s is misconfigured and paused until %s: %s",
                name,
                until.isoformat(),
                exc.message,
            )

    async def _drop_push(self, member_id: str, channel: str, contact: str | None) -> int:
        if contact is None:
            return 0
        kind = "webpush" if channel == "webpush" else "fcm"
        want = contact if kind == "fcm" else json.loads(contact).get("endpoint")
        keys = await self.store.pool.fetch(
            "SELECT blind, value_enc FROM push_subscriptions WHERE member_id = $1 AND kind = $2",
            member_id,
            kind,
        )
        from journeyman.engine.crypto import load_data_keys

        data_keys = await load_data_keys(self.store.pool, self.keyring, [member_id])
        key = data_keys.get(member_id)
        removed = 0
        for row in keys:
            if key is None:
                break
            sub = json.loads(key.decrypt(row["value_enc"], f"push:{kind}"))
            if (sub.get("token") if kind == "fcm" else sub.get("endpoint")) == want:
                await self.store.pool.execute(
                    "DELETE FROM push_subscriptions WHERE blind = $1", row["blind"]
                )
                removed += 1
        return removed

    # ------------------------------------------------------------------ recording
    def _about(self, request: SendRequest, did: str) -> dict[str, Any]:
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

    async def _record_final(
        self,
        request: SendRequest,
        did: str,
        expected: int,
        outcome: SendOutcome,
        events: list[Any],
        **extra: Any,
    ) -> list[Any]:
        done = claims.completed(did, outcome, request.workflow_id, **extra)
        for attempt in range(5):
            try:
                return await record(
                    self.store,
                    request.member_id,
                    events,
                    also=[
                        (
                            claims.stream_of(did),
                            [done],
                            expected if expected >= 0 else claims.NO_STREAM,
                        )
                    ],
                )
            except (ConcurrencyError, StaleTransactionError):
                raise
            except Exception:
                if attempt == 4:
                    raise  # the claim stays open: a retry settles it as in doubt
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _final(
        self,
        request: SendRequest,
        did: str,
        state: claims.DeliveryState,
        status: str,
        *,
        reason: str,
    ) -> SendOutcome:
        outcome = SendOutcome(status=status, delivery_id=did, reason=reason)  # type: ignore[arg-type]
        event_type = "message.suppressed" if status == "suppressed" else "message.failed"
        data = {**self._about(request, did), "reason": reason, "final": True}
        try:
            await self._record_final(
                request,
                did,
                state.version,
                outcome,
                [message_event(event_type, f"{event_type}/{did}", data)],
            )
        except (ConcurrencyError, StaleTransactionError):
            fresh = await claims.load(self.store, did)
            if fresh.outcome is not None:
                return fresh.outcome
            raise
        log.info("delivery %s %s", did, status)
        return outcome

    async def _defer(
        self,
        request: SendRequest,
        did: str,
        channel: str | None,
        until: dt.datetime,
        reason: str,
    ) -> SendOutcome:
        stamp = int(until.timestamp())
        data = {
            **self._about(request, did),
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

    async def _channel_failed(
        self,
        request: SendRequest,
        did: str,
        claim_version: int,
        channel: str,
        error: str,
        detail: dict[str, Any],
    ) -> None:
        data = {
            **self._about(request, did),
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

    async def _in_doubt(
        self, request: SendRequest, did: str, expected: int, channel: str, reason: str
    ) -> SendOutcome:
        outcome = SendOutcome(status="in_doubt", delivery_id=did, channel=channel, reason=reason)
        data = {**self._about(request, did), "channel": channel, "reason": reason}
        await self._record_final(
            request,
            did,
            expected,
            outcome,
            [message_event("message.in_doubt", f"message.in_doubt/{did}", data)],
        )
        log.warning("delivery %s on %s is in doubt: %s", did, channel, reason)
        return outcome

    async def _settle_in_doubt(
        self, request: SendRequest, did: str, state: claims.DeliveryState, reason: str
    ) -> SendOutcome:
        channel = (state.claim or {}).get("channel")
        try:
            return await self._in_doubt(request, did, state.version, channel, reason)
        except (ConcurrencyError, StaleTransactionError):
            fresh = await claims.load(self.store, did)
            if fresh.outcome is not None:
                return fresh.outcome
            raise
