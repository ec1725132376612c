"""The message ledger: one row per delivery, folded monotonically from `message.*` events.

Status only moves forward in rank — deferred < suppressed = failed < in_doubt < sent <
delivered = bounced < opened < clicked — so a late or repeated provider callback ("sent"
after "delivered") never moves a message back. First-time timestamps are kept; clicks add
up. The rows are written in the same transaction as the events they come from, and
`rebuild(store)` folds them again from the store.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import asyncpg
from journeyman.event_store import START, PostgresEventStore, RecordedEvent, UndecodableEvent

log = logging.getLogger(__name__)

RANK = {
    "deferred": 0,
    "suppressed": 1,
    "failed": 1,
    "in_doubt": 2,
    "queued": 3,
    "sent": 3,
    "delivered": 4,
    "bounced": 4,
    "opened": 5,
    "clicked": 6,
}
STATUS_OF_EVENT = {
    "message.deferred": "deferred",
    "message.suppressed": "suppressed",
    "message.failed": "failed",
    "message.in_doubt": "in_doubt",
    "message.sent": "sent",
    "message.provider_status": None,  # the data says which
    "message.delivered": "delivered",
    "message.bounced": "bounced",
    "message.opened": "opened",
    "message.clicked": "clicked",
}
LEDGER_EVENTS = tuple(STATUS_OF_EVENT)
_COPIED = ("journey", "step", "variant", "template", "purpose", "workflow_id")

_UPSERT = """
INSERT INTO message_ledger AS l (
    delivery_id, member_id, journey, step, variant, template, purpose, workflow_id, channel,
    status, status_rank, provider_message_id, reason, sent_at, delivered_at, opened_at,
    clicked_at, failed_at, clicks, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        now())
ON CONFLICT (delivery_id) DO UPDATE SET
    journey = coalesce(l.journey, EXCLUDED.journey),
    step = coalesce(l.step, EXCLUDED.step),
    variant = coalesce(l.variant, EXCLUDED.variant),
    template = coalesce(l.template, EXCLUDED.template),
    purpose = coalesce(l.purpose, EXCLUDED.purpose),
    workflow_id = coalesce(l.workflow_id, EXCLUDED.workflow_id),
    channel = CASE WHEN EXCLUDED.status_rank >= l.status_rank
                   THEN coalesce(EXCLUDED.channel, l.channel) ELSE l.channel END,
    status = CASE WHEN EXCLUDED.status_rank >= l.status_rank
                  THEN EXCLUDED.status ELSE l.status END,
    status_rank = greatest(l.status_rank, EXCLUDED.status_rank),
    reason = CASE WHEN EXCLUDED.status_rank >= l.status_rank
                  THEN coalesce(EXCLUDED.reason, l.reason) ELSE l.reason END,
    provider_message_id = coalesce(EXCLUDED.provider_message_id, l.provider_message_id),
    sent_at = coalesce(l.sent_at, EXCLUDED.sent_at),
    delivered_at = coalesce(l.delivered_at, EXCLUDED.delivered_at),
    opened_at = coalesce(l.opened_at, EXCLUDED.opened_at),
    clicked_at = coalesce(l.clicked_at, EXCLUDED.clicked_at),
    failed_at = coalesce(l.failed_at, EXCLUDED.failed_at),
    clicks = l.clicks + EXCLUDED.clicks,
    updated_at = now()
"""


def row_of(
    event_type: str, member_id: str, data: dict[str, Any], at: dt.datetime
) -> tuple[Any, ...] | None:
    """The ledger upsert arguments of one `message.*` event, or None if it has none."""
    if event_type not in STATUS_OF_EVENT or not data.get("delivery_id"):
        return None
    status = STATUS_OF_EVENT[event_type] or str(data.get("status", ""))
    if status not in RANK:
        return None
    return (
        data["delivery_id"],
        member_id,
        *(data.get(k) for k in _COPIED),
        data.get("channel"),
        status,
        RANK[status],
        data.get("provider_message_id"),
        data.get("reason") or data.get("error"),
        at if status == "sent" else None,
        at if status == "delivered" else None,
        at if status in ("opened", "clicked") else None,
        at if status == "clicked" else None,
        at if status in ("failed", "bounced") else None,
        1 if status == "clicked" else 0,
    )


async def fold(
    conn: asyncpg.Connection | asyncpg.Pool,
    event_type: str,
    member_id: str,
    data: dict[str, Any],
    at: dt.datetime,
) -> None:
    args = row_of(event_type, member_id, data, at)
    if args is not None:
        await conn.execute(_UPSERT, *args)


def member_of(event: RecordedEvent) -> str:
    return event.stream_id.removeprefix("member-")


async def rebuild(store: PostgresEventStore) -> int:
    """Empty the ledger and fold every `message.*` event of the store again."""
    async with store.pool.acquire() as conn:
        await conn.execute("TRUNCATE message_ledger")
    cursor, n = START, 0
    while True:
        bad: list[UndecodableEvent] = []
        events, nxt = await store.read_all(cursor, types=LEDGER_EVENTS, limit=1000, undecodable=bad)
        for b in bad:
            log.error(
                "ledger rebuild: event at position %d skipped: %s", b.global_position, b.error
            )
        if events:
            async with store.pool.acquire() as conn, conn.transaction():
                for e in events:
                    await fold(conn, e.type, member_of(e), e.data, e.occurred_at)
            n += len(events)
        if len(events) + len(bad) < 1000:
            return n
        cursor = nxt


async def find(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    delivery_id: str | None = None,
    provider_message_id: str | None = None,
) -> asyncpg.Record | None:
    if delivery_id:
        row = await conn.fetchrow(
            "SELECT * FROM message_ledger WHERE delivery_id = $1", delivery_id
        )
        if row is not None:
            return row
    if provider_message_id:
        return await conn.fetchrow(
            "SELECT * FROM message_ledger WHERE provider_message_id = $1 LIMIT 1",
            provider_message_id,
        )
    return None
