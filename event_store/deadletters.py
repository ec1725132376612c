"""Dead letters: events a subscriber could not handle, parked so that it can go on.

A subscriber (a projection, the dispatcher, …) parks an event it could not decode, or one
whose processing failed its configured number of attempts, with `park` — in the transaction
that moves its checkpoint past the event, when it has one — and reads on. A parked event is
never lost: an operator lists it (`list_dead_letters`), and after a fix hands it back to its
consumer (the engine's `retry`) or drops it (`resolve(..., "dropped")`).

One row per (consumer, event). Parking the same event again (a replay of the store) counts
the attempts and keeps the first failure's time; a dropped event stays dropped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import asyncpg

from .model import RecordedEvent, UndecodableEvent

Status = Literal["parked", "retried", "dropped"]
STATUSES: tuple[Status, ...] = ("parked", "retried", "dropped")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    consumer: str
    partition: int
    partitions: int
    global_position: int
    tx_id: int
    stream_id: str
    event_id: str
    type: str
    error: str
    attempts: int
    first_failed_at: dt.datetime
    last_failed_at: dt.datetime
    status: Status
    resolved_at: dt.datetime | None
    resolution: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> DeadLetter:
        return cls(**{k: r[k] for k in cls.__slots__})  # type: ignore[arg-type]


_PARK = """
INSERT INTO dead_letters (consumer, partition, partitions, global_position, tx_id, stream_id,
                          event_id, type, error, attempts, first_failed_at, last_failed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11, now()), now())
ON CONFLICT (consumer, global_position) DO UPDATE SET
    error = excluded.error, attempts = dead_letters.attempts + excluded.attempts,
    last_failed_at = now(),
    status = CASE WHEN dead_letters.status = 'dropped' THEN 'dropped' ELSE 'parked' END,
    resolved_at = CASE WHEN dead_letters.status = 'dropped' THEN dead_letters.resolved_at END,
    resolution = CASE WHEN dead_letters.status = 'dropped' THEN dead_letters.resolution END
RETURNING id
"""


async def park(
    conn: asyncpg.Connection | asyncpg.Pool,
    consumer: str,
    event: RecordedEvent | UndecodableEvent,
    error: str,
    *,
    attempts: int = 1,
    first_failed_at: dt.datetime | None = None,
    partition: int = 0,
    partitions: int = 1,
) -> int:
    """Park `event` for `consumer`; returns the dead letter's id."""
    return await conn.fetchval(
        _PARK,
        consumer,
        partition,
        partitions,
        event.global_position,
        event.tx_id,
        event.stream_id,
        event.event_id,
        event.type,
        error,
        attempts,
        first_failed_at,
    )


async def list_dead_letters(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    status: Status | None = "parked",
    consumer: str | None = None,
    limit: int = 100,
) -> list[DeadLetter]:
    """Dead letters, oldest first; `status=None` for all of them."""
    rows = await conn.fetch(
        "SELECT * FROM dead_letters WHERE ($1::text IS NULL OR status = $1) "
        "AND ($2::text IS NULL OR consumer = $2) ORDER BY id LIMIT $3",
        status,
        consumer,
        limit,
    )
    return [DeadLetter.from_record(r) for r in rows]


async def get_dead_letter(conn: asyncpg.Connection | asyncpg.Pool, id: int) -> DeadLetter | None:
    row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", id)
    return None if row is None else DeadLetter.from_record(row)


async def resolve(
    conn: asyncpg.Connection | asyncpg.Pool, id: int, status: Status, resolution: str = ""
) -> DeadLetter | None:
    """Mark a dead letter `retried` (its consumer handled it) or `dropped` (given up)."""
    if status not in STATUSES or status == "parked":
        raise ValueError(f"status must be 'retried' or 'dropped', not {status!r}")
    row = await conn.fetchrow(
        "UPDATE dead_letters SET status = $2, resolved_at = now(), resolution = $3 "
        "WHERE id = $1 RETURNING *",
        id,
        status,
        resolution or None,
    )
    return None if row is None else DeadLetter.from_record(row)


async def record_failure(
    conn: asyncpg.Connection | asyncpg.Pool, id: int, error: str
) -> DeadLetter | None:
    """A retry that failed again: the dead letter stays parked with the new error."""
    row = await conn.fetchrow(
        "UPDATE dead_letters SET error = $2, attempts = attempts + 1, last_failed_at = now(), "
        "status = 'parked', resolved_at = NULL, resolution = NULL WHERE id = $1 RETURNING *",
        id,
        error,
    )
    return None if row is None else DeadLetter.from_record(row)
