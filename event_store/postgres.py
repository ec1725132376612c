"""The PostgreSQL event store (asyncpg).

Appends run as one transaction per batch: take a transaction-scoped advisory lock per
stream of the batch (in one sorted order, so batches over the same streams queue instead of
deadlocking), read the current version of every stream, check `expected_version`, and
insert all new rows with one `COPY`. Because the head is read after the stream's lock, two
appends to one stream with `ANY` never conflict: the second waits for the first to commit
and continues from its last version. Unique constraints on `event_id` and
`(stream_id, stream_version)` stay as the last line of defence; an event id stored by a
concurrent batch is found by its unique violation and the batch redone with a look-up.

Readers of the whole store never trust `global_position` alone: see `read_all`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from .codec import from_json
from .errors import ConcurrencyError, StaleTransactionError
from .model import (
    ANY,
    NO_STREAM,
    START,
    STREAM_EXISTS,
    AppendResult,
    Cursor,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    UndecodableEvent,
)
from .retry import retry_lost_races
from .validation import prepare_batch

if TYPE_CHECKING:
    from .subscription import Subscription

log = logging.getLogger(__name__)
MAX_POSITION = 2**63 - 1
_COLUMNS = (
    "global_position, tx_id, stream_id, stream_version, event_id, type, data, metadata, "
    "occurred_at, recorded_at"
)
# Everything an append must know, in one round trip and one row of arrays (cheap to decode):
# each stream's last version in input order; the streams whose head was written by a newer
# transaction than this one (see `StaleTransactionError`); which event ids are already stored;
# and fresh positions from the identity sequence for the COPY. The sequence is named as a
# constant: `pg_get_serial_sequence` would be looked up again for every row.
_PREPARE = """
SELECT h.versions, h.stale, d.ids, d.streams, d.versions AS dup_versions,
       d.positions AS dup_positions, p.positions
FROM (
    SELECT array_agg(coalesce(x.v, -1) ORDER BY s.i) AS versions,
           array_agg(s.id) FILTER (WHERE x.t > pg_current_xact_id_if_assigned()) AS stale
    FROM unnest($1::text[]) WITH ORDINALITY AS s(id, i)
    LEFT JOIN LATERAL (
        SELECT stream_version AS v, tx_id AS t FROM events WHERE stream_id = s.id
        ORDER BY stream_version DESC LIMIT 1
    ) x ON true
) h, (
    SELECT array_agg(event_id) AS ids, array_agg(stream_id) AS streams,
           array_agg(stream_version) AS versions, array_agg(global_position) AS positions
    FROM events WHERE event_id = ANY($2::text[])
) d, (
    SELECT array_agg(nextval('events_global_position_seq'::regclass)) AS positions
    FROM generate_series(1, $3::int)
) p
"""
# Reading a row that this client cannot decode (a timestamp before year 1, an integer past
# Python's digit limit in JSON) raises one of these for the whole fetch; see `_fetch_events`.
_DECODE_ERRORS = (OverflowError, ValueError, TypeError, UnicodeError, RecursionError)
_KEY_COLUMNS = "global_position, tx_id, stream_id, stream_version, event_id, type"
_RAW_COLUMNS = (
    "data::text AS data, metadata::text AS metadata, occurred_at::text AS occurred_at, "
    "recorded_at::text AS recorded_at"
)
_PARTITION_SQL = "((hashtextextended(stream_id, 0) & 9223372036854775807) % {n}) = {i}"
_APPEND_ATTEMPTS = 50
STREAM_LOCK_CLASS = 0x4A4D  # first key of the per-stream advisory locks (two-key lock space)
# One statement, locks taken in ascending key order (the ORDER BY runs before the
# aggregate calls the function): every appender uses the same order, so none deadlock.
_LOCK_STREAMS = f"""
SELECT count(pg_advisory_xact_lock({STREAM_LOCK_CLASS}, k)) FROM (
    SELECT DISTINCT hashtext(s) AS k FROM unnest($1::text[]) AS s ORDER BY 1
) x
"""
_COPY_COLUMNS = [
    "global_position",
    "stream_id",
    "stream_version",
    "event_id",
    "type",
    "data",
    "metadata",
    "occurred_at",
]

StreamAppend = tuple[str, Sequence[NewEvent], ExpectedVersion]


class PreparedBatch:
    """A batch checked and encoded ahead of its transaction (`PostgresEventStore.prepare`),
    so a caller's transaction spends no time on JSON."""

    __slots__ = ("encoded", "items")

    def __init__(self, items: Sequence[StreamAppend]) -> None:
        self.items = items
        self.encoded = prepare_batch(items)

    @property
    def stream_ids(self) -> list[str]:
        return list(dict.fromkeys(s for s, _, _ in self.items))

    def replace(self, item: int, index: int, event: NewEvent) -> None:
        """Put `event` in place of the `index`-th event of item `item` (same event id),
        checked and encoded like the others."""
        stream_id, events, expected = self.items[item]
        if events[index].event_id != event.event_id:
            raise ValueError("replace() keeps the event id")
        (encoded,) = prepare_batch([(stream_id, [event], expected)])
        self.encoded[item][index] = encoded[0]
        events = list(events)
        events[index] = event
        self.items = [*self.items[:item], (stream_id, events, expected), *self.items[item + 1 :]]


def partition_clause(partition: int, partitions: int) -> str:
    """SQL that keeps one member-hash partition of the streams (Message DB's consumer groups)."""
    if partitions < 1 or not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is outside 0..{partitions - 1}")
    return _PARTITION_SQL.format(n=int(partitions), i=int(partition))


_BS, _BS2 = "\\", "\\\\"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (JSON text only needs backslashes doubled)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _needs_field_escapes(records: list[tuple[Any, ...]]) -> bool:
    """Whether a stream id, event id or type holds a character COPY's text format must escape
    other than a backslash (checked over all of them at once)."""
    joined = "".join([f"{r[0]}{r[2]}{r[3]}" for r in records])
    return "\t" in joined or "\n" in joined or "\r" in joined


async def lock_streams(conn: asyncpg.Connection, stream_ids: Iterable[str]) -> None:
    """Lock streams for appending until the end of `conn`'s transaction.

    A caller that appends inside its own transaction calls this before its first write,
    so the transaction's id (the store's read order, see `read_all`) is assigned after the
    previous append to these streams has committed; `append_batch` takes the locks itself
    otherwise. Several calls are fine when each names every stream in one go or the
    streams only grow in the same order (the locks are re-entrant)."""
    await conn.execute(_LOCK_STREAMS, list(stream_ids))


class _LookUpDuplicates(Exception):
    """Redo the append, this time looking up already-stored event ids first."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=from_json, schema="pg_catalog")


def _record(row: asyncpg.Record) -> RecordedEvent:
    # The columns are selected in the dataclass's field order (`_COLUMNS`, `_Shape`).
    return RecordedEvent(*row)


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """An asyncpg pool with the codecs and session settings the store relies on."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={
            # An idle-in-transaction session would hold back every gap-safe reader.
            "idle_in_transaction_session_timeout": "60000",
            "application_name": "journeyman",
        },
    )


class PostgresEventStore:
    """Append-only event store. Create with `await PostgresEventStore.connect(dsn)`."""

    def __init__(self, pool: asyncpg.Pool, *, owns_pool: bool = False) -> None:
        self.pool = pool
        self._owns_pool = owns_pool
        self._appended = asyncio.Event()

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 2, max_size: int = 10
    ) -> PostgresEventStore:
        return cls(await create_pool(dsn, min_size=min_size, max_size=max_size), owns_pool=True)

    async def close(self) -> None:
        if self._owns_pool:
            await self.pool.close()

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ append
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[AppendResult]:
        """Append events to one stream; see `append_batch`."""
        return await self.append_batch([(stream_id, events, expected_version)], conn=conn)

    @staticmethod
    def prepare(items: Sequence[StreamAppend]) -> PreparedBatch:
        """Check and encode a batch now, to append it later with `append_batch`."""
        return PreparedBatch(items)

    async def append_batch(
        self,
        items: Sequence[StreamAppend] | PreparedBatch,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[AppendResult]:
        """Append to many streams in one transaction; all of it is stored or none of it.

        Returns one `AppendResult` per event, in input order. An event whose `event_id` is
        already stored is not stored again: its result carries the original position and
        `duplicate=True`. When `conn` is given, the append joins the caller's transaction
        (in a savepoint, so a lost race is retried without aborting the caller). `items` may
        be a `PreparedBatch` (see `prepare`).
        """
        prepared = items if isinstance(items, PreparedBatch) else PreparedBatch(items)
        items, encoded = prepared.items, prepared.encoded
        if not any(events for _, events, _ in items):
            return []
        # Duplicates are rare (client retries), so the first attempt lets the unique index on
        # event_id find them; only when it does is the batch redone with a lookup first.
        look_up_duplicates = False

        async def once() -> list[AppendResult]:
            nonlocal look_up_duplicates
            while True:
                try:
                    return await self._append_once(conn, items, encoded, look_up_duplicates)
                except _LookUpDuplicates:
                    look_up_duplicates = True  # not a lost race: redo it at once
                except asyncpg.UniqueViolationError as exc:
                    if getattr(exc, "constraint_name", None) == "events_event_id_key":
                        look_up_duplicates = True
                    raise

        return await retry_lost_races(
            once,
            on=(asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError),
            attempts=_APPEND_ATTEMPTS,
            first=0.001,
        )

    async def _append_once(
        self,
        conn: asyncpg.Connection | None,
        items: Sequence[StreamAppend],
        encoded: list[list[tuple[str, str]]],
        dedupe: bool,
    ) -> list[AppendResult]:
        if conn is not None:
            # Inside the caller's transaction: a savepoint lets a lost race retry (or
            # report StaleTransactionError when only a new transaction can).
            async with conn.transaction():
                return await self._append_tx(conn, items, encoded, dedupe=dedupe)
        async with self.pool.acquire() as c, c.transaction():
            results = await self._append_tx(c, items, encoded, dedupe=dedupe)
        self._appended.set()
        self._appended = asyncio.Event()
        return results

    async def _append_tx(
        self,
        conn: asyncpg.Connection,
        items: Sequence[StreamAppend],
        encoded: list[list[tuple[str, str]]],
        *,
        dedupe: bool,
    ) -> list[AppendResult]:
        all_ids = [e.event_id for _, events, _ in items for e in events]
        stream_ids = list(dict.fromkeys(s for s, _, _ in items))
        # The head is read only once this transaction owns the streams (taken again at no
        # cost when the caller's transaction already holds them: `lock_streams`).
        await lock_streams(conn, stream_ids)
        row = await conn.fetchrow(_PREPARE, stream_ids, all_ids if dedupe else [], len(all_ids))
        if row["stale"]:
            # This transaction got its id before reading the stream (the caller's transaction
            # wrote earlier, or a savepoint retry) and a newer one has appended since: our rows
            # would sort before that stream's earlier versions, so only a new transaction may.
            raise StaleTransactionError(row["stale"][0])
        versions = dict(zip(stream_ids, row["versions"], strict=True))
        existing: dict[str, AppendResult] = {}
        if row["ids"]:
            existing = {
                i: AppendResult(i, s, v, p, True)
                for i, s, v, p in zip(
                    row["ids"],
                    row["streams"],
                    row["dup_versions"],
                    row["dup_positions"],
                    strict=True,
                )
            }
        # Items are walked in stream order (stable, so a stream's items keep their order):
        # rows then come out in (stream, version) order, so concurrent batches touching the
        # same streams meet in the same order in the unique index and cannot deadlock.
        starts = [0] * len(items)
        n = 0
        for k, (_, events, _) in enumerate(items):
            starts[k] = n
            n += len(events)
        results: list[AppendResult | None] = [None] * n
        records: list[tuple[Any, ...]] = []
        for k in sorted(range(len(items)), key=lambda k: items[k][0]):
            stream_id, events, expected = items[k]
            current = versions[stream_id]
            checked = False
            at = starts[k]
            for e, (d, m) in zip(events, encoded[k], strict=True):
                if existing:
                    found = existing.get(e.event_id)
                    if found is not None:
                        results[at] = found
                        at += 1
                        continue
                if not checked:
                    try:
                        _check_expected(stream_id, current, expected)
                    except ConcurrencyError:
                        if not dedupe:
                            # Maybe a retried batch whose events are stored: look them up.
                            raise _LookUpDuplicates from None
                        raise
                    checked = True
                current += 1
                records.append((stream_id, current, e.event_id, e.type, d, m, e.occurred_at, at))
                at += 1
            versions[stream_id] = current
        if records:
            positions = row["positions"]
            await self._copy_rows(conn, records, positions)
            for r, pos in zip(records, positions, strict=False):
                results[r[7]] = AppendResult(r[2], r[0], r[1], pos)
        return results  # type: ignore[return-value]  # every slot is filled above

    @staticmethod
    async def _copy_rows(
        conn: asyncpg.Connection, records: list[tuple[Any, ...]], positions: Sequence[int]
    ) -> None:
        """Insert with COPY (text format, built with C-speed string operations). Positions were
        drawn from the identity sequence first, so the caller knows them without RETURNING."""
        now = dt.datetime.now(dt.UTC).isoformat()
        if _needs_field_escapes(records):
            lines = [
                f"{pos}\t{_copy_text(s)}\t{v}\t{_copy_text(eid)}\t{_copy_text(t)}\t"
                f"{d.replace(_BS, _BS2)}\t{m.replace(_BS, _BS2)}\t"
                f"{o.isoformat() if o is not None else now}\n"
                for pos, (s, v, eid, t, d, m, o, _) in zip(positions, records, strict=False)
            ]
            text = "".join(lines)
        else:
            # No tab, newline or carriage return in any text field (JSON text never has one
            # raw): only backslashes need escaping, and that can be done once for everything.
            text = "".join(
                [
                    f"{pos}\t{s}\t{v}\t{eid}\t{t}\t{d}\t{m}\t"
                    f"{o.isoformat() if o is not None else now}\n"
                    for pos, (s, v, eid, t, d, m, o, _) in zip(positions, records, strict=False)
                ]
            )
            if _BS in text:
                text = text.replace(_BS, _BS2)
        # A buffer goes straight to the protocol (a file-like source is read in a thread;
        # plain bytes would be taken for a path).
        await conn.copy_to_table(
            "events", source=memoryview(text.encode()), columns=_COPY_COLUMNS, format="text"
        )

    # ------------------------------------------------------------------ read
    async def stream_version(self, stream_id: str) -> int:
        """The stream's last version, -1 when it has no events."""
        async with self.pool.acquire() as c:
            v = await c.fetchval(
                "SELECT max(stream_version) FROM events WHERE stream_id = $1", stream_id
            )
        return -1 if v is None else v

    async def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int = 1000,
        undecodable: list[UndecodableEvent] | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream in version order (or reverse), starting at `from_version`.

        A row that cannot be decoded is left out; with `undecodable`, it is added to that list
        (it counts towards `limit`)."""
        if backwards:
            start = MAX_POSITION if from_version is None else from_version
            sql = (
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version <= $2 "
                "ORDER BY stream_version DESC LIMIT $3"
            )
        else:
            start = 0 if from_version is None else from_version
            sql = (
                f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 "
                "ORDER BY stream_version LIMIT $3"
            )
        async with self.pool.acquire() as c:
            events, _, _ = await _fetch_events(c, sql, (stream_id, start, limit), undecodable)
        return events

    async def read_event(self, global_position: int) -> RecordedEvent | UndecodableEvent | None:
        """The event at `global_position` (an `UndecodableEvent` if its row cannot be
        decoded), None when there is none."""
        bad: list[UndecodableEvent] = []
        async with self.pool.acquire() as c:
            events, _, _ = await _fetch_events(
                c,
                f"SELECT {_COLUMNS} FROM events WHERE global_position = $1",
                [global_position],
                bad,
            )
        return events[0] if events else (bad[0] if bad else None)

    async def read_all(
        self,
        after: Cursor = START,
        *,
        types: Iterable[str] | None = None,
        category: str | None = None,
        partition: int = 0,
        partitions: int = 1,
        limit: int = 1000,
        undecodable: list[UndecodableEvent] | None = None,
        data_of: Collection[str] | None = None,
    ) -> tuple[list[RecordedEvent], Cursor]:
        """Events of the whole store after `after`, in commit-safe order, and the next cursor.

        With `data_of`, only events of those types come with their data and metadata; the
        others come with empty data and only the `source` of their metadata. A reader that
        looks no further into most events (a projection folding counts and times) then
        neither transfers nor parses what it would not read.

        Only transactions older than the oldest still-running one are read
        (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`), ordered by
        `(tx_id, global_position)`: a transaction that commits late always has a larger
        `tx_id` than anything a reader has passed, so no event is ever skipped. The returned
        cursor may move past filtered-out events, so a filtered reader does not rescan them.

        A row that cannot be decoded never stops the reader: it is left out of the events
        (the cursor still moves past it) and, with `undecodable`, added to that list so the
        caller can park it (see docs/reliability.md, "Dead letters").
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        conditions = ["(tx_id, global_position) > ($1::xid8, $2::bigint)", "tx_id < $3::xid8"]
        args: list[Any] = [after.tx_id, after.position]
        type_list = list(types) if types is not None else None
        async with self.pool.acquire() as c:
            xmin = await c.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
            args.append(xmin)
            if type_list is not None:
                args.append(type_list)
                conditions.append(f"type = ANY(${len(args)}::text[])")
            if category is not None:
                args.append(category)
                conditions.append(f"category = ${len(args)}")
            if partitions > 1:
                conditions.append(partition_clause(partition, partitions))
            shape = _FULL
            if data_of is not None:
                args.append(list(data_of))
                shape = _Shape(tuple(data_of), len(args))
            args.append(limit)
            sql = (
                f"SELECT {shape.columns()} FROM events WHERE {' AND '.join(conditions)} "
                f"ORDER BY tx_id, global_position LIMIT ${len(args)}"
            )
            events, seen, last = await _fetch_events(c, sql, args, undecodable, shape)
        if seen == limit:
            return events, last
        # Everything below xmin that matches has been returned: jump past the rest.
        caught_up = Cursor(xmin - 1, MAX_POSITION)
        return events, max(last or after, caught_up)

    async def head(self) -> Cursor:
        """The cursor just past everything a reader can safely see now."""
        async with self.pool.acquire() as c:
            xmin = await c.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
        return Cursor(xmin - 1, MAX_POSITION)

    async def wait_for_append(self, timeout: float) -> None:
        """Return when this process appends something, or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._appended.wait(), timeout)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ checkpoints
    async def load_checkpoint(self, name: str, partition: int = 0, partitions: int = 1) -> Cursor:
        async with self.pool.acquire() as c:
            row = await c.fetchrow(
                "SELECT tx_id, position FROM subscription_checkpoints "
                "WHERE name = $1 AND partition = $2 AND partitions = $3",
                name,
                partition,
                partitions,
            )
        return START if row is None else Cursor(row["tx_id"], row["position"])

    async def save_checkpoint(
        self,
        name: str,
        cursor: Cursor,
        partition: int = 0,
        partitions: int = 1,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> None:
        """Save a subscription's place; pass `conn` to save it inside your own transaction."""
        sql = (
            "INSERT INTO subscription_checkpoints (name, partition, partitions, tx_id, position) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, partition, partitions) DO UPDATE "
            "SET tx_id = excluded.tx_id, position = excluded.position, updated_at = now()"
        )
        args = (name, partition, partitions, cursor.tx_id, cursor.position)
        if conn is not None:
            await conn.execute(sql, *args)
        else:
            async with self.pool.acquire() as c:
                await c.execute(sql, *args)

    def subscribe(
        self,
        name: str,
        *,
        types: Iterable[str] | None = None,
        category: str | None = None,
        partition: int = 0,
        partitions: int = 1,
        batch_size: int = 500,
        auto_checkpoint: bool = True,
        follow: bool = True,
        min_poll: float = 0.005,
        max_poll: float = 0.1,
    ) -> Subscription:
        """Catch up from the stored checkpoint of `name`, then follow live appends."""
        from .subscription import Subscription

        return Subscription(
            self,
            name,
            types=types,
            category=category,
            partition=partition,
            partitions=partitions,
            batch_size=batch_size,
            auto_checkpoint=auto_checkpoint,
            follow=follow,
            min_poll=min_poll,
            max_poll=max_poll,
        )


@dataclass(frozen=True)
class _Shape:
    """What a read selects: every column, or (`data_of`) data only for those types and,
    for the others, metadata reduced to its `source`. The types travel as parameter
    `$arg` of the query."""

    data_of: tuple[str, ...] | None = None
    arg: int = 0

    def columns(self) -> str:
        if self.data_of is None:
            return _COLUMNS
        wanted = f"type = ANY(${self.arg}::text[])"
        return (
            f"{_KEY_COLUMNS}, CASE WHEN {wanted} THEN data ELSE '{{}}'::jsonb END AS data, "
            f"CASE WHEN {wanted} THEN metadata "
            "ELSE jsonb_strip_nulls(jsonb_build_object('source', metadata->'source')) END "
            "AS metadata, occurred_at, recorded_at"
        )

    def keys(self) -> str:
        """The key columns for the same query (which must still name its parameters)."""
        if self.data_of is None:
            return _KEY_COLUMNS
        return f"{_KEY_COLUMNS}, type = ANY(${self.arg}::text[]) AS with_data"

    def at(self, arg: int) -> _Shape:
        return _Shape(self.data_of, arg)

    def params(self) -> list[Any]:
        return [] if self.data_of is None else [list(self.data_of)]


_FULL = _Shape()


async def _fetch_events(
    c: asyncpg.Connection,
    sql: str,
    args: Sequence[Any],
    undecodable: list[UndecodableEvent] | None,
    shape: _Shape = _FULL,
) -> tuple[list[RecordedEvent], int, Cursor | None]:
    """Run a `SELECT {_COLUMNS} FROM events …` query: the events, how many rows it returned
    (decoded or not) and the cursor of the last row.

    The driver decodes a whole result at once, so one bad row fails the fetch. Only then
    (the fast path costs nothing more) is the query re-run for the rows' keys alone, and
    the rows decoded in halves until each bad one is found alone (`_decode_rows`)."""
    try:
        rows = await c.fetch(sql, *args)
    except _DECODE_ERRORS:
        pass
    else:
        events = [_record(r) for r in rows]
        return events, len(events), (events[-1].cursor if events else None)
    keys = await c.fetch(sql.replace(shape.columns(), shape.keys(), 1), *args)
    bad: list[UndecodableEvent] = []
    decoded = await _decode_rows(c, [k["global_position"] for k in keys], bad, shape.at(2))
    for b in bad:
        log.debug("event at position %d cannot be decoded: %s", b.global_position, b.error)
    if undecodable is not None:
        undecodable.extend(bad)
    events = [decoded[k["global_position"]] for k in keys if k["global_position"] in decoded]
    last = keys[-1] if keys else None
    cursor = Cursor(last["tx_id"], last["global_position"]) if last is not None else None
    return events, len(keys), cursor


async def _decode_rows(
    c: asyncpg.Connection,
    positions: list[int],
    bad: list[UndecodableEvent],
    shape: _Shape = _FULL,
) -> dict[int, RecordedEvent]:
    """The rows at `positions` that decode, by position; the others are added to `bad`.
    `shape` names its types as parameter $2."""
    if not positions:
        return {}
    try:
        rows = await c.fetch(
            f"SELECT {shape.columns()} FROM events WHERE global_position = ANY($1::bigint[])",
            positions,
            *shape.params(),
        )
        return {r["global_position"]: _record(r) for r in rows}
    except _DECODE_ERRORS as exc:
        if len(positions) == 1:
            bad.append(await _undecodable(c, positions[0], exc))
            return {}
    mid = len(positions) // 2
    found = await _decode_rows(c, positions[:mid], bad, shape)
    found.update(await _decode_rows(c, positions[mid:], bad, shape))
    return found


async def _undecodable(
    c: asyncpg.Connection, position: int, exc: BaseException
) -> UndecodableEvent:
    row = await c.fetchrow(
        f"SELECT {_KEY_COLUMNS}, {_RAW_COLUMNS} FROM events WHERE global_position = $1", position
    )
    return UndecodableEvent(
        global_position=row["global_position"],
        tx_id=row["tx_id"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        type=row["type"],
        error=f"{type(exc).__name__}: {exc}",
        raw={k: row[k] for k in ("data", "metadata", "occurred_at", "recorded_at")},
    )


def _check_expected(stream_id: str, current: int, expected: ExpectedVersion) -> None:
    if expected is ANY:
        return
    if expected is NO_STREAM:
        if current != -1:
            raise ConcurrencyError(stream_id, current, "no stream")
        return
    if expected is STREAM_EXISTS:
        if current == -1:
            raise ConcurrencyError(stream_id, current, "an existing stream")
        return
    if current != expected:
        raise ConcurrencyError(stream_id, current, f"version {expected}")
