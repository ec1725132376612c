"""Writing what happened: events to the member's stream (and the delivery's), the message
ledger and provider-reported blocks, all in one transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from journeyman.event_store import ANY, NewEvent, PostgresEventStore, StaleTransactionError
from journeyman.event_store.model import AppendResult, ExpectedVersion
from journeyman.event_store.retry import retry_lost_races

from . import ledger


@dataclass(frozen=True)
class Block:
    """Stop sending `channel` (for `purpose`, or '*') to a member until the profile has
    folded the event that explains why. A member holds one block per reason, so removing
    one (START lifts the STOP) leaves the others (a hard bounce) in place."""

    channel: str
    purpose: str
    reason: str


def member_stream(member_id: str) -> str:
    return f"member-{member_id}"


async def record(
    store: PostgresEventStore,
    member_id: str,
    events: Sequence[NewEvent],
    *,
    also: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]] = (),
    blocks: Sequence[Block] = (),
    unblocks: Sequence[Block] = (),
    now: dt.datetime | None = None,
) -> list[AppendResult]:
    """Append `events` to `member-<id>` (and `also` to other streams) in one transaction,
    fold the `message.*` ones into the ledger, write `blocks` and remove `unblocks` (those
    with the same channel, purpose and reason). Events already stored (same event id) are
    not folded twice."""
    # A busy member stream that moved on under the transaction: redo all of it.
    return await retry_lost_races(
        lambda: _record_once(store, member_id, events, also, blocks, unblocks, now),
        on=StaleTransactionError,
    )


async def _record_once(
    store: PostgresEventStore,
    member_id: str,
    events: Sequence[NewEvent],
    also: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]],
    blocks: Sequence[Block],
    unblocks: Sequence[Block],
    now: dt.datetime | None,
) -> list[AppendResult]:
    items = [*also, (member_stream(member_id), list(events), ANY)]
    at = now or dt.datetime.now(dt.UTC)
    async with store.pool.acquire() as conn, conn.transaction():
        results = await store.append_batch(items, conn=conn)
        member_results = results[-len(events) :] if events else []
        first_new: int | None = None
        for event, result in zip(events, member_results, strict=True):
            if result.duplicate:
                continue
            first_new = first_new or result.global_position
            await ledger.fold(conn, event.type, member_id, event.data, event.occurred_at or at)
        if blocks and first_new is not None:
            for b in blocks:
                await conn.execute(
                    "INSERT INTO delivery_blocks (member_id, channel, purpose, reason, position) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (member_id, channel, purpose, reason) "
                    "DO UPDATE SET position = EXCLUDED.position, created_at = now()",
                    member_id,
                    b.channel,
                    b.purpose,
                    b.reason,
                    max(r.global_position for r in member_results),
                )
        for b in unblocks if first_new is not None else ():
            await conn.execute(
                "DELETE FROM delivery_blocks WHERE member_id = $1 AND channel = $2 "
                "AND purpose = $3 AND reason = $4",
                member_id,
                b.channel,
                b.purpose,
                b.reason,
            )
    return results


def message_event(
    event_type: str,
    event_id: str,
    data: dict[str, Any],
    *,
    source: str = "delivery",
    occurred_at: dt.datetime | None = None,
    **meta: Any,
) -> NewEvent:
    return NewEvent(
        event_type, data, {"source": source, **meta}, event_id=event_id, occurred_at=occurred_at
    )
