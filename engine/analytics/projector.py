"""The journey analytics projection: journey and message events folded into per-entry facts
(`journey_entries`), per-delivery facts (`journey_deliveries`), conversions
(`journey_conversions`) and the counts reports read (`journey_funnel_counts`,
`journey_channel_counts`, `journey_outcome_counts`).

Reports then read a handful of count rows instead of joining sends to entries over the
whole history. Exactly-once like the profile projection: each batch is applied in one
transaction that takes an advisory lock, re-reads the checkpoint (`journey_stats`) and moves
it. No event halts it: one that cannot be decoded is parked as a dead letter at once; a batch
that fails is applied again one event at a time, and an event that still fails
`dead_letter_attempts` times is parked and the projection goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from journeyman.engine.analytics.fold import (
    CONVERSION_COLUMNS,
    DELIVERY_COLUMNS,
    ENTRY_COLUMNS,
    TYPES,
    Changes,
    Fold,
    JourneyEvent,
)
from journeyman.engine.core.parking import (
    ANALYZE_AFTER,
    Attempts,
    NarrowingReader,
    announce,
    describe,
    park,
)
from journeyman.engine.core.readers import JOURNEY_STATS as NAME
from journeyman.engine.core.readers import JOURNEY_STATS_LOCK as _LOCK
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.event_store import (
    START,
    Cursor,
    PostgresEventStore,
    RecordedEvent,
    UndecodableEvent,
)

log = logging.getLogger(__name__)


_SELECT = (
    "SELECT global_position, tx_id, stream_id, stream_version, event_id, type, data::text AS data,"
    " extract(epoch FROM occurred_at)::float8 AS occurred_epoch FROM events "
    "WHERE (tx_id, global_position) > ($1::xid8, $2::bigint) AND type = ANY($3::text[]) {below} "
    "ORDER BY tx_id, global_position {limit}"
)


TABLES = (
    "journey_entries",
    "journey_deliveries",
    "journey_conversions",
    "journey_funnel_counts",
    "journey_channel_counts",
    "journey_outcome_counts",
)


def _upsert(table: str, columns: list[str], key: str) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    )


def _add_counts(table: str, keys: list[str], values: list[str]) -> str:
    columns = keys + values
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{v} = {table}.{v} + excluded.{v}" for v in values)
    )


FUNNEL_VALUES = [
    "entered",
    "messaged",
    "delivered",
    "clicked",
    "converted",
    "revenue",
    "revenue_sq",
]
CHANNEL_VALUES = ["sent", "delivered", "clicked"]
_ENTRIES = _upsert("journey_entries", ENTRY_COLUMNS, "entry_id")
_DELIVERIES = _upsert("journey_deliveries", DELIVERY_COLUMNS, "delivery_id")
_CONVERSIONS = (
    f"INSERT INTO journey_conversions ({', '.join(CONVERSION_COLUMNS)}) "
    f"SELECT {', '.join(CONVERSION_COLUMNS)} "
    "FROM jsonb_populate_recordset(NULL::journey_conversions, $1::text::jsonb) "
    "ON CONFLICT DO NOTHING"
)
# A conversion recorded before its send's event was seen gets its time to convert now.
_LATE_SENDS = """
UPDATE journey_conversions c
SET seconds = CASE WHEN c.at_epoch >= d.sent_epoch THEN c.at_epoch - d.sent_epoch END
FROM journey_deliveries d
WHERE d.delivery_id = ANY($1::text[]) AND c.delivery_id = d.delivery_id AND c.seconds IS NULL
"""
_FUNNEL = _add_counts("journey_funnel_counts", ["journey", "variant", "holdout"], FUNNEL_VALUES)
_CHANNELS = _add_counts("journey_channel_counts", ["journey", "channel"], CHANNEL_VALUES)
_OUTCOMES = _add_counts("journey_outcome_counts", ["journey", "type"], ["n"])


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)


async def read_events(
    conn: asyncpg.Connection,
    after: Cursor,
    *,
    limit: int | None = None,
    below_xmin: bool = False,
    undecodable: list[UndecodableEvent] | None = None,
) -> tuple[list[JourneyEvent], Cursor | None]:
    """Journey and message events after `after`, in store order, and the cursor of the last
    row read. `below_xmin`: only transactions older than the oldest running one (what a
    checkpointed reader may pass). A row whose data cannot be read is left out (and added to
    `undecodable`)."""
    args: list[Any] = [after.tx_id, after.position, list(TYPES)]
    below = ""
    if below_xmin:
        args.append(await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())"))
        below = f"AND tx_id < ${len(args)}::xid8"
    lim = ""
    if limit is not None:
        args.append(limit)
        lim = f"LIMIT ${len(args)}"
    rows = await conn.fetch(_SELECT.format(below=below, limit=lim), *args)
    events: list[JourneyEvent] = []
    for r in rows:
        try:
            data = json.loads(r["data"])
            if not isinstance(data, dict):
                raise ValueError("event data is not a JSON object")
        except ValueError as exc:
            if undecodable is not None:
                undecodable.append(_undecodable(r, describe(exc)))
            continue
        events.append(
            JourneyEvent(
                r["global_position"],
                r["tx_id"],
                r["stream_id"],
                r["event_id"],
                r["type"],
                data,
                r["occurred_epoch"],
            )
        )
    last = Cursor(rows[-1]["tx_id"], rows[-1]["global_position"]) if rows else None
    return events, last


def _undecodable(r: asyncpg.Record, error: str) -> UndecodableEvent:
    return UndecodableEvent(
        r["global_position"],
        r["tx_id"],
        r["stream_id"],
        r["stream_version"],
        r["event_id"],
        r["type"],
        error,
        {"data": r["data"]},
    )


def from_recorded(event: RecordedEvent) -> JourneyEvent:
    return JourneyEvent(
        event.global_position,
        event.tx_id,
        event.stream_id,
        event.event_id,
        event.type,
        event.data if isinstance(event.data, dict) else {},
        event.occurred_at.timestamp(),
    )


async def write(conn: asyncpg.Connection, ch: Changes) -> None:
    """Store what a fold changed and add its count differences."""
    if ch.touched_entries:
        rows = [vars(ch.entries[k]) for k in sorted(ch.touched_entries)]
        await conn.execute(_ENTRIES, _json(rows))
    if ch.touched_deliveries:
        rows = [vars(ch.deliveries[k]) for k in sorted(ch.touched_deliveries)]
        await conn.execute(_DELIVERIES, _json(rows))
    if ch.conversions:
        await conn.execute(_CONVERSIONS, _json([vars(c) for c in ch.conversions]))
    if ch.sent_deliveries:
        await conn.execute(_LATE_SENDS, sorted(ch.sent_deliveries))
    funnel = [
        {
            "journey": k[0],
            "variant": k[1],
            "holdout": k[2],
            **dict(zip(FUNNEL_VALUES, v, strict=True)),
        }
        for k, v in sorted(ch.funnel.items())
        if any(v)
    ]
    if funnel:
        await conn.execute(_FUNNEL, _json(funnel))
    channels = [
        {"journey": k[0], "channel": k[1], **dict(zip(CHANNEL_VALUES, v, strict=True))}
        for k, v in sorted(ch.channels.items())
        if any(v)
    ]
    if channels:
        await conn.execute(_CHANNELS, _json(channels))
    outcomes = [{"journey": k[0], "type": k[1], "n": n} for k, n in sorted(ch.outcomes.items())]
    if outcomes:
        await conn.execute(_OUTCOMES, _json(outcomes))


class JourneyStatsProjector(NarrowingReader):
    """Keeps the journey analytics tables current. `run_until_caught_up()` for tests and
    rebuilds, `run_forever()` as a background task (the API runs one, like the profile
    projection)."""

    label = "journey stats projection"
    tables = TABLES

    def __init__(
        self,
        store: PostgresEventStore,
        settings: Settings | None = None,
        *,
        batch_size: int = 2000,
        analyze_after: int = ANALYZE_AFTER,
    ) -> None:
        self.store = store
        self.settings = settings or get_settings()
        self.batch_size = batch_size
        self.analyze_after = analyze_after
        self.attempts = Attempts(self.settings.dead_letter_attempts)
        self._reading_upto: Cursor | None = None
        self._narrow_until: Cursor | None = None

    async def _run(self, limit: int) -> int:
        self._reading_upto = None
        undecodable: list[UndecodableEvent] = []
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            cursor = await checkpoint(conn)
            events, last = await read_events(
                conn, cursor, limit=limit, below_xmin=True, undecodable=undecodable
            )
            if last is None:
                return 0
            self._reading_upto = last
            for u in undecodable:
                await park(conn, NAME, u, u.error)
            if events:
                fold = Fold()
                await fold.load(conn, events)
                for e in events:
                    fold.apply(e)
                await write(conn, fold.finish())
            await self.store.save_checkpoint(NAME, last, conn=conn)
        for u in undecodable:
            announce(NAME, u, u.error)
        return len(events) + len(undecodable)

    async def _park_next(self, error: str, first_failed_at: dt.datetime | None) -> int:
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            cursor = await checkpoint(conn)
            undecodable: list[UndecodableEvent] = []
            events, last = await read_events(
                conn, cursor, limit=1, below_xmin=True, undecodable=undecodable
            )
            parked: list[Any] = [*events, *undecodable]
            if last is None or not parked:
                self._narrow_until = None
                return 0
            await park(
                conn,
                NAME,
                parked[0],
                error,
                attempts=self.attempts.limit,
                first_failed_at=first_failed_at,
            )
            await self.store.save_checkpoint(NAME, last, conn=conn)
        announce(NAME, parked[0], error)
        if self._narrow_until is not None and last >= self._narrow_until:
            self._narrow_until = None
        return 1

    async def reprocess(self, event: RecordedEvent) -> None:
        """Fold one (parked) event into the tables again, without moving the checkpoint."""
        journey_event = from_recorded(event)
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            fold = Fold()
            await fold.load(conn, [journey_event])
            fold.apply(journey_event)
            await write(conn, fold.finish())

    async def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Forget the tables and the checkpoint, then replay the whole store."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
            await conn.execute("DELETE FROM subscription_checkpoints WHERE name = $1", NAME)
        return await self.run_until_caught_up(progress)


async def checkpoint(conn: asyncpg.Connection) -> Cursor:
    row = await conn.fetchrow(
        "SELECT tx_id, position FROM subscription_checkpoints "
        "WHERE name = $1 AND partition = 0 AND partitions = 1",
        NAME,
    )
    return START if row is None else Cursor(row["tx_id"], row["position"])
