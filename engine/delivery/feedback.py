"""Feedback: what providers and members tell us after a send, turned into events.

* Provider callbacks (`webhook`): the channel verifies the signature (`verify_webhook`, over
  the configured public URL, never the one the request claims) and parses the callback
  (`parse_webhook`) into `DeliveryEvent`s, which become
  `message.provider_status`, `message.delivered`, `message.bounced`, `member.unsubscribed`
  (SMS STOP) or `member.consent_changed` (SMS START).
* Tracking links: a click (`message.clicked`, first click per link), an open
  (`message.opened`, first open), an unsubscribe (`member.unsubscribed`).

Every event has an id derived from what it is about, so a provider that retries a callback,
or a member who clicks twice, does not count twice. Events go to the member's stream (so the
dispatcher routes them to running journeys) and are folded into the message ledger, which
never moves a message back (a late "sent" after "delivered" changes nothing).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from journeyman.channels import Channel, DeliveryEvent, WebhookRequest
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import normalise_phone, resolve_member_id
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.identity.member_ids import is_minted
from journeyman.event_store import PostgresEventStore

from . import ledger
from .links import LinkClaims, LinkSigner
from .recording import Block, message_event, record

log = logging.getLogger(__name__)

# Twilio error codes that mean the number will never receive SMS.
HARD_BOUNCE_CODES = frozenset({"21211", "21614", "30005", "30006"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
# (purpose, reason) of the blocks an SMS opt-out leaves: STOP here, or Twilio's own 21610
OPT_OUT_BLOCKS = (("*", "stop"), ("marketing", "unsubscribed at the provider"))


class WebhookRejected(Exception):
    """A callback whose signature does not verify, or for a channel without webhooks."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


NO_PUBLIC_URL = (
    "provider callbacks are refused: JOURNEYMAN_DELIVERY__PUBLIC_URL is not set, so there is "
    "no URL to check their signatures against; set it to the URL providers call"
)


def public_url(settings: Settings) -> str | None:
    """`JOURNEYMAN_DELIVERY__PUBLIC_URL` without its trailing slash, or None when it was left
    at its default: signed provider callbacks are then refused, since no provider can call
    the default loopback address."""
    if "public_url" not in settings.delivery.model_fields_set:
        return None
    return settings.delivery.public_url.rstrip("/")


def warn_without_public_url(settings: Settings, channels: Mapping[str, Channel]) -> None:
    """Log, once at start, that signed callbacks will be refused for want of a public URL."""
    takes = sorted(
        name
        for name, c in channels.items()
        if c.configured and type(c).verify_webhook is not Channel.verify_webhook
    )
    if takes and public_url(settings) is None:
        log.warning("%s (channels taking callbacks: %s)", NO_PUBLIC_URL, ", ".join(takes))


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Feedback:
    def __init__(
        self,
        store: PostgresEventStore,
        channels: Mapping[str, Channel],
        settings: Settings,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.settings = settings
        secret = settings.resolved_secret()
        self.keyring = Keyring(secret)
        self.links = LinkSigner(secret, settings.delivery.public_url)

    # ------------------------------------------------------------------ tracking links
    async def _about(self, claims: LinkClaims) -> dict[str, Any]:
        row = await ledger.find(self.store.pool, delivery_id=claims.delivery_id)
        data: dict[str, Any] = {"delivery_id": claims.delivery_id, "channel": claims.channel}
        if row is not None:
            for k in ("journey", "step", "variant", "template", "purpose", "workflow_id"):
                data[k] = row[k]
        return data

    async def _member(self, claims: LinkClaims) -> str:
        """The member a link names. A link sent before its member was re-keyed (a member from
        before opaque ids) carries the old id, which is now the member's `user_id` alias."""
        if is_minted(claims.member_id):
            return claims.member_id
        return await resolve_member_id(self.store.pool, claims.member_id, self.keyring)

    async def click(self, claims: LinkClaims) -> str:
        """Record a click; the URL to redirect to."""
        assert claims.url is not None
        data = {**await self._about(claims), "url": claims.url}
        await record(
            self.store,
            await self._member(claims),
            [
                message_event(
                    "message.clicked",
                    f"message.clicked/{claims.delivery_id}/{_h(claims.url)}",
                    data,
                    source="tracking",
                )
            ],
        )
        return claims.url

    async def open(self, claims: LinkClaims) -> None:
        await record(
            self.store,
            await self._member(claims),
            [
                message_event(
                    "message.opened",
                    f"message.opened/{claims.delivery_id}",
                    await self._about(claims),
                    source="tracking",
                )
            ],
        )

    async def unsubscribe(self, claims: LinkClaims, *, how: str = "link") -> None:
        """Turn marketing consent off for the link's channel (one-click or the page)."""
        data = {
            **await self._about(claims),
            "purpose": "marketing",
            "reason": "unsubscribe_link",
            "method": how,
        }
        await record(
            self.store,
            await self._member(claims),
            [
                message_event(
                    "member.unsubscribed",
                    f"member.unsubscribed/{claims.delivery_id}",
                    data,
                    source="tracking",
                )
            ],
            blocks=[Block(claims.channel, "marketing", "unsubscribed")],
        )
        log.info(
            "member unsubscribed from %s marketing (delivery %s)",
            claims.channel,
            claims.delivery_id,
        )

    # ------------------------------------------------------------------ provider callbacks
    def signed_url(self, path: str, query: str = "") -> str:
        """The URL a provider signs a callback to `path` over: the configured public URL,
        never the one the request claims (its `Host` header is the sender's to choose)."""
        base = public_url(self.settings)
        if base is None:
            raise WebhookRejected(403, NO_PUBLIC_URL)
        return base + path + (f"?{query}" if query else "")

    async def webhook(
        self,
        channel_name: str,
        *,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        method: str = "POST",
    ) -> int:
        """Verify and apply one provider callback to `path?query`; the number of events it
        recorded. The signature is checked over the public URL (`signed_url`), and nothing of
        the body is used before it verifies."""
        channel = self.channels.get(channel_name)
        if channel is None or not channel.configured:
            raise WebhookRejected(404, f"no configured channel named {channel_name!r}")
        if type(channel).verify_webhook is Channel.verify_webhook:
            raise WebhookRejected(404, f"channel {channel_name!r} takes no callbacks")
        request = WebhookRequest(method, self.signed_url(path, query), headers, body)
        try:
            ok = await channel.verify_webhook(request)
        except ValueError as exc:  # UnicodeDecodeError included: a body that cannot be read
            raise WebhookRejected(
                400, f"body: the callback's body is not UTF-8 form data ({type(exc).__name__})"
            ) from exc
        if not ok:
            raise WebhookRejected(403, "the callback's signature does not verify")
        n = 0
        for event in await channel.parse_webhook(request):
            n += await self.apply(event)
        return n

    async def _ledger_row(self, event: DeliveryEvent, wait: float = 5.0) -> Any:
        """The ledger row the callback is about. A callback carrying one of our delivery ids
        can overtake the recording of the send it reports on (providers call back within
        milliseconds): it waits a little for the row rather than dropping the receipt."""
        deadline = time.monotonic() + wait
        while True:
            row = await ledger.find(
                self.store.pool,
                delivery_id=event.delivery_id,
                provider_message_id=event.provider_message_id,
            )
            if row is not None or not event.delivery_id or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(0.1)

    async def apply(self, event: DeliveryEvent) -> int:
        if event.kind in ("unsubscribed", "inbound"):
            return await self._inbound(event)
        row = await self._ledger_row(event)
        if row is None:
            log.info("callback for an unknown message on %s ignored", event.channel)
            return 0
        did = row["delivery_id"]
        data: dict[str, Any] = {
            "delivery_id": did,
            "channel": row["channel"] or event.channel,
            "journey": row["journey"],
            "step": row["step"],
            "variant": row["variant"],
            "template": row["template"],
            "workflow_id": row["workflow_id"],
            "provider_message_id": event.provider_message_id,
        }
        at = event.occurred_at
        kind = event.kind
        if kind == "delivered":
            new = message_event("message.delivered", f"message.delivered/{did}", data)
        elif kind in ("failed", "bounced"):
            hard = (event.error_code or "") in HARD_BOUNCE_CODES
            data.update(bounce_type="hard" if hard else "soft", code=event.error_code)
            new = message_event("message.bounced", f"message.bounced/{did}/{data['channel']}", data)
        elif kind in ("opened", "clicked"):
            new = message_event(f"message.{kind}", f"message.{kind}/{did}/provider", data)
        else:  # accepted, sent: the provider's progress, folded into the ledger
            status = "queued" if kind == "accepted" else "sent"
            data["status"] = status
            new = message_event(
                "message.provider_status", f"message.provider_status/{did}/{status}", data
            )
        new = type(new)(
            new.type, new.data, {**new.metadata, "source": "provider"}, new.event_id, at
        )
        await record(self.store, row["member_id"], [new])
        return 1

    async def _member_by_phone(self, phone: str | None) -> str | None:
        if not phone:
            return None
        try:
            value = normalise_phone(phone)
        except ValueError:
            return None
        return await self.store.pool.fetchval(
            "SELECT member_id FROM member_aliases WHERE kind = 'phone' AND blind = $1",
            self.keyring.blind("phone", value),
        )

    async def _inbound(self, event: DeliveryEvent) -> int:
        member = await self._member_by_phone(event.contact)
        if member is None:
            log.info("inbound %s from an unknown number ignored", event.channel)
            return 0
        sid = event.provider_message_id or _h(repr(event.raw))
        channel = event.channel
        if event.kind == "unsubscribed":  # STOP: no more SMS of any kind
            events = [
                message_event(
                    "member.unsubscribed",
                    f"member.unsubscribed/{channel}/{sid}",
                    {"channel": channel, "purpose": "marketing", "reason": "stop"},
                    source="provider",
                ),
                message_event(
                    "member.consent_changed",
                    f"member.consent_changed/{channel}/{sid}/transactional",
                    {
                        "channel": channel,
                        "purpose": "transactional",
                        "granted": False,
                        "reason": "stop",
                    },
                    source="provider",
                ),
            ]
            await record(self.store, member, events, blocks=[Block(channel, "*", "stop")])
            return len(events)
        if (event.text or "").strip().upper() in START_WORDS:
            events = [
                message_event(
                    "member.consent_changed",
                    f"member.consent_changed/{channel}/{sid}/{purpose}",
                    {"channel": channel, "purpose": purpose, "granted": True, "reason": "start"},
                    source="provider",
                )
                for purpose in ("marketing", "transactional")
            ]
            # the opt-out's blocks go in the transaction that records the consent; a hard
            # bounce's block ("recipient invalid") stays: START does not make a number valid
            opt_outs = [Block(channel, *block) for block in OPT_OUT_BLOCKS]
            await record(self.store, member, events, unblocks=opt_outs)
            return len(events)
        return 0
