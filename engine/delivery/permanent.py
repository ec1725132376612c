"""What a provider's permanent refusal means beyond this delivery.

- `RecipientInvalid` (a hard bounce, an unknown number): `message.bounced` and a block on
  the channel for every purpose;
- `RecipientUnsubscribed` (the member opted out at the provider): `member.unsubscribed` and
  a block for marketing;
- `RecipientGone` (an expired push subscription): the subscription is deleted and
  `member.contact_removed` recorded;
- `ChannelMisconfigured` (bad credentials, a sender the provider refuses): the channel is
  paused for everyone for `pause_after_misconfiguration`, with an alert in the log.

Any other `PermanentError` only fails this channel for this delivery.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

from journeyman.channels import (
    ChannelMisconfigured,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    RecipientUnsubscribed,
)
from journeyman.engine.contracts.delivery import SendRequest, delivery_id
from journeyman.engine.core.delivery_settings import DeliverySettings
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.event_store import PostgresEventStore

from .choice import Candidate
from .outcomes import about
from .recording import Block, message_event, record

log = logging.getLogger("journeyman.engine.delivery.service")


async def apply_permanent(
    store: PostgresEventStore,
    request: SendRequest,
    chosen: Candidate,
    exc: PermanentError,
    *,
    keyring: Keyring,
    config: DeliverySettings,
    clock: Callable[[], dt.datetime],
) -> None:
    member, name = request.member_id, chosen.name
    did = delivery_id(request)
    if isinstance(exc, RecipientInvalid):
        data = {
            **about(request, did),
            "channel": name,
            "bounce_type": "hard",
            "reason": exc.message,
            "code": exc.code,
        }
        await record(
            store,
            member,
            [message_event("message.bounced", f"message.bounced/{did}/{name}", data)],
            blocks=[Block(name, "*", "recipient invalid")],
        )
    elif isinstance(exc, RecipientUnsubscribed):
        data = {"channel": name, "purpose": "marketing", "reason": "provider", "delivery_id": did}
        await record(
            store,
            member,
            [message_event("member.unsubscribed", f"member.unsubscribed/{did}/{name}", data)],
            blocks=[Block(name, "marketing", "unsubscribed at the provider")],
        )
    elif isinstance(exc, RecipientGone):
        removed = await drop_push(store, keyring, member, name, chosen.contact)
        data = {
            "channel": name,
            "kind": "push",
            "removed": removed,
            "reason": "subscription gone",
            "delivery_id": did,
        }
        event_id = f"member.contact_removed/{did}/{name}"
        await record(store, member, [message_event("member.contact_removed", event_id, data)])
    elif isinstance(exc, ChannelMisconfigured):
        until = clock() + config.pause_after_misconfiguration
        await store.pool.execute(
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


async def drop_push(
    store: PostgresEventStore,
    keyring: Keyring,
    member_id: str,
    channel: str,
    contact: str | None,
) -> int:
    """Delete the member's push subscription that `contact` names; how many went."""
    if contact is None:
        return 0
    kind = "webpush" if channel == "webpush" else "fcm"
    want = contact if kind == "fcm" else json.loads(contact).get("endpoint")
    rows = await store.pool.fetch(
        "SELECT blind, value_enc FROM push_subscriptions WHERE member_id = $1 AND kind = $2",
        member_id,
        kind,
    )
    key = (await load_data_keys(store.pool, keyring, [member_id])).get(member_id)
    if key is None:
        return 0
    removed = 0
    for row in rows:
        sub = json.loads(key.decrypt(row["value_enc"], f"push:{kind}"))
        if (sub.get("token") if kind == "fcm" else sub.get("endpoint")) == want:
            await store.pool.execute(
                "DELETE FROM push_subscriptions WHERE blind = $1", row["blind"]
            )
            removed += 1
    return removed
