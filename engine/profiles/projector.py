"""The member profile projection: events of `member-*` streams folded into `member_profiles`.

Exactly-once: each batch is applied in one transaction that also moves the checkpoint
(`subscription_checkpoints`, name `member_profiles`). The transaction first takes an
advisory lock and re-reads the checkpoint under it, so several processes may run the
projector (every API process does by default) and a batch is still applied once.
Replaying the store from the start (`rebuild`) yields the same rows, given the same clock.

No event halts it: one that cannot be decoded, or whose folding keeps failing, is parked as
a dead letter (`journeyman.engine.core.parking`) in the transaction that moves the
checkpoint past it.

Segments: in the same transaction, the members a batch changed are evaluated against the
registered segments (`journeyman.engine.segments.membership`), so each entry or exit is recorded
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import asyncpg
from journeyman.engine.core.parking import Attempts, NarrowingReader, announce, park
from journeyman.engine.core.readers import PROFILES as NAME
from journeyman.engine.core.readers import PROFILES_LOCK as _LOCK
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.identity.sealing import has_sealed, open_fields
from journeyman.engine.profiles import inactivity_due
from journeyman.engine.segments import due as segment_due
from journeyman.engine.segments.membership import Segments, SegmentTracker
from journeyman.event_store import (
    START,
    Cursor,
    PostgresEventStore,
    RecordedEvent,
    UndecodableEvent,
)

from .fold import COLUMNS, READS_DATA, ProfileRow, apply, combine, scores

log = logging.getLogger(__name__)

# The events whose data the projection reads: the fold's, and merges (read here). The rest
# are read without their data (`read_all(data_of=...)`): most of a store is views and clicks.
_DATA_OF = READS_DATA | {"member.merged"}
REBUILD_BATCH = 5000
_SQL_TYPES = {
    "member_id": "text",
    "first_seen_at": "timestamptz",
    "last_seen_at": "timestamptz",
    "last_activity_at": "timestamptz",
    "last_order_at": "timestamptz",
    "order_count": "int4",
    "monetary_value": "float8",
    "recency_score": "int2",
    "frequency_score": "int2",
    "monetary_score": "int2",
    "lifecycle_stage": "text",
    "consent": "jsonb",
    "timezone": "text",
    "locale": "text",
    "suppressed": "jsonb",
    "traits": "jsonb",
    "erased": "bool",
    "merged_into": "text",
    "event_count": "int8",
    "last_position": "int8",
}
# One statement per batch, one array per column (jsonb columns travel as JSON text).
_UPSERT = (
    f"INSERT INTO member_profiles ({', '.join(COLUMNS)}) SELECT "
    + ", ".join(f"{c}::jsonb" if _SQL_TYPES[c] == "jsonb" else c for c in COLUMNS)
    + " FROM unnest("
    + ", ".join(
        f"${i}::{'text' if _SQL_TYPES[c] == 'jsonb' else _SQL_TYPES[c]}[]"
        for i, c in enumerate(COLUMNS, 1)
    )
    + f") AS x({', '.join(COLUMNS)}) ON CONFLICT (member_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "member_id")
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM member_profiles WHERE member_id = ANY($1::text[])"

Clock = Callable[[], dt.datetime]


@dataclass
class _Prefetch:
    cursor: Cursor
    limit: int
    read: asyncio.Task[tuple[list[RecordedEvent], Cursor, list[UndecodableEvent]]]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ProfileProjector(NarrowingReader):
    """Folds member events into profiles. `run_until_caught_up()` for tests and rebuilds,
    `run_forever()` as a background task. `segments`: those to evaluate (by default, every
    plugin's; `()` for none)."""

    label = "profile projection"
    tables = ("member_profiles", "segment_memberships", "segment_due", "inactivity_due")

    def __init__(
        self,
        store: PostgresEventStore,
        settings: Settings | None = None,
        *,
        clock: Clock = _utcnow,
        batch_size: int = 1000,
        segments: Segments | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or get_settings()
        self.clock = clock
        self.batch_size = batch_size
        self.activity_types = frozenset(self.settings.activity_types)
        self.segments = SegmentTracker(store, segments)
        self.attempts = Attempts(self.settings.dead_letter_attempts)
        self._keyring: Keyring | None = None
        self._reading_upto: Cursor | None = None
        self._narrow_until: Cursor | None = None
        self._prefetch: _Prefetch | None = None

    async def _run(self, limit: int) -> int:
        """Read and apply up to `limit` events after the checkpoint, in one transaction."""
        self._reading_upto = None
        undecodable: list[UndecodableEvent] = []
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            cursor = await self._checkpoint(conn)
            events, nxt = await self._read(cursor, limit, undecodable)
            if not events and not undecodable:
                return 0
            self._reading_upto = nxt
            if len(events) + len(undecodable) == limit:
                self._prefetch = _Prefetch(nxt, limit, self._read_task(nxt, limit))
            for u in undecodable:
                await park(conn, NAME, u, u.error)
            if events:
                await self._apply(conn, events)
            await self.store.save_checkpoint(NAME, nxt, conn=conn)
        for u in undecodable:
            announce(NAME, u, u.error)
        return len(events) + len(undecodable)

    async def _read(
        self, cursor: Cursor, limit: int, undecodable: list[UndecodableEvent]
    ) -> tuple[list[RecordedEvent], Cursor]:
        """The `limit` member events after `cursor`: read ahead while the previous batch was
        applied when that read starts at the same place, else read now."""
        ahead, self._prefetch = self._prefetch, None
        if ahead is not None:
            if ahead.cursor == cursor and ahead.limit == limit:
                with contextlib.suppress(Exception):  # a failed read-ahead is read again
                    events, nxt, bad = await ahead.read
                    undecodable.extend(bad)
                    return events, nxt
            else:
                ahead.read.cancel()
        return await self.store.read_all(
            cursor, category="member", limit=limit, undecodable=undecodable, data_of=_DATA_OF
        )

    def _read_task(
        self, cursor: Cursor, limit: int
    ) -> asyncio.Task[tuple[list[RecordedEvent], Cursor, list[UndecodableEvent]]]:
        """Read the next batch on a connection of its own while this one is applied: the
        database reads while Python folds. Events below the oldest running transaction are
        final, so a batch read now is the batch a read after this commit would start with."""

        async def read() -> tuple[list[RecordedEvent], Cursor, list[UndecodableEvent]]:
            bad: list[UndecodableEvent] = []
            events, nxt = await self.store.read_all(
                cursor, category="member", limit=limit, undecodable=bad, data_of=_DATA_OF
            )
            return events, nxt, bad

        return asyncio.create_task(read())

    async def _park_next(self, error: str, first_failed_at: dt.datetime | None) -> int:
        """Park the event after the checkpoint and move the checkpoint past it."""
        undecodable: list[UndecodableEvent] = []
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            cursor = await self._checkpoint(conn)
            events, nxt = await self.store.read_all(
                cursor, category="member", limit=1, undecodable=undecodable
            )
            parked = [*events, *undecodable]
            if not parked:
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
            await self.store.save_checkpoint(NAME, nxt, conn=conn)
        announce(NAME, parked[0], error)
        if self._narrow_until is not None and nxt >= self._narrow_until:
            self._narrow_until = None
        return 1

    async def reprocess(self, event: RecordedEvent) -> None:
        """Fold one (parked) event into the profiles again and evaluate its member's
        segments, without moving the checkpoint."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await self._apply(conn, [event], retried=True)

    @staticmethod
    async def _checkpoint(conn: asyncpg.Connection) -> Cursor:
        row = await conn.fetchrow(
            "SELECT tx_id, position FROM subscription_checkpoints "
            "WHERE name = $1 AND partition = 0 AND partitions = 1",
            NAME,
        )
        return START if row is None else Cursor(row["tx_id"], row["position"])

    async def rebuild(
        self, progress: Callable[[int], None] | None = None, *, batch_size: int = REBUILD_BATCH
    ) -> int:
        """Forget every profile and the checkpoint, then replay the whole store, in batches
        of at least `batch_size` events (larger than a live batch: a replay is all backlog,
        and each batch costs a fixed number of round trips and a commit)."""
        async with self.store.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute("DELETE FROM member_profiles")
            await conn.execute("DELETE FROM subscription_checkpoints WHERE name = $1", NAME)
        live_batch, self.batch_size = self.batch_size, max(self.batch_size, batch_size)
        try:
            return await self.run_until_caught_up(progress)
        finally:
            self.batch_size = live_batch

    async def _open(
        self, conn: asyncpg.Connection, events: list[RecordedEvent]
    ) -> list[RecordedEvent]:
        """The events with their sealed personal properties opened, with the data keys of
        the batch's members loaded in one query (an erased member's are None or absent).
        Only events whose data the fold reads (`READS_DATA`) are opened."""
        sealed = {
            e.stream_id.removeprefix("member-")
            for e in events
            if e.type in READS_DATA and has_sealed(e.data)
        }
        if not sealed:
            return events
        if self._keyring is None:
            self._keyring = Keyring(self.settings.resolved_secret())
        keys = await load_data_keys(conn, self._keyring, sealed)
        opened = []
        for e in events:
            if e.type in READS_DATA and has_sealed(e.data):
                key = keys.get(e.stream_id.removeprefix("member-"))
                e = replace(e, data=open_fields(e.data, key, e.event_id))
            opened.append(e)
        return opened

    async def _apply(
        self, conn: asyncpg.Connection, events: list[RecordedEvent], *, retried: bool = False
    ) -> None:
        events = await self._open(conn, events)
        rows: dict[str, ProfileRow] = {}
        wanted = {e.stream_id.removeprefix("member-") for e in events}
        wanted |= {
            e.data.get("merged")
            for e in events
            if e.type == "member.merged" and isinstance(e.data.get("merged"), str)
        }
        await self._load(conn, rows, wanted)
        activity_types = self.activity_types
        before = {
            m: (r.last_activity_at, r.erased or r.merged_into is not None) for m, r in rows.items()
        }
        for e in events:
            member_id = e.stream_id.removeprefix("member-")
            if e.type == "member.merged" and e.data.get("survivor") == member_id:
                merged_id = e.data.get("merged")
                survivor = await self._target(conn, rows, member_id)
                if isinstance(merged_id, str) and merged_id != survivor.member_id:
                    merged = rows.get(merged_id) or rows.setdefault(
                        merged_id, ProfileRow(merged_id)
                    )
                    if merged.merged_into is None:
                        combine(survivor, merged)
                        merged.merged_into = survivor.member_id
                apply(survivor, e, activity_types)
                continue
            target = rows.get(member_id)
            if target is None or target.merged_into is not None:
                target = await self._target(conn, rows, member_id)
            apply(target, e, activity_types)
        now = self.clock()
        for r in rows.values():
            scores(r, now, self.settings)
        # Segments first: the transaction takes its id at its first write, and holds back
        # every reader of the store from then to its commit (docs/operations.md).
        upto = None if retried else events[-1].cursor
        await self.segments.after_batch(conn, rows.values(), upto, now)
        if rows:
            columns = zip(*(r.to_record() for r in rows.values()), strict=True)
            await conn.execute(_UPSERT, *columns)
        await _track_inactivity(conn, rows, before)
        await segment_due.track(conn, rows.values(), now, self.settings)

    async def _target(
        self, conn: asyncpg.Connection, rows: dict[str, ProfileRow], member_id: str
    ) -> ProfileRow:
        """The row events of `member_id` fold into: its own, or its survivor's."""
        row = rows.get(member_id) or rows.setdefault(member_id, ProfileRow(member_id))
        for _ in range(16):
            if row.merged_into is None:
                return row
            nxt = row.merged_into
            if nxt not in rows:
                await self._load(conn, rows, {nxt})
            row = rows.get(nxt) or rows.setdefault(nxt, ProfileRow(nxt))
        return row

    @staticmethod
    async def _load(conn: asyncpg.Connection, rows: dict[str, ProfileRow], ids: set[str]) -> None:
        for r in await conn.fetch(_SELECT, list(ids)):
            rows[r["member_id"]] = ProfileRow.from_record(r)


async def _track_inactivity(
    conn: asyncpg.Connection,
    rows: dict[str, ProfileRow],
    before: dict[str, tuple[dt.datetime | None, bool]],
) -> None:
    """Keep the inactivity scan's due moments (`journeyman.engine.profiles.inactivity_due`) in step
    with the profiles this batch changed, in the batch's transaction."""
    active: list[tuple[str, dt.datetime]] = []
    gone: list[str] = []
    for member_id, r in rows.items():
        is_gone = r.erased or r.merged_into is not None
        was = before.get(member_id)
        if is_gone:
            if was is None or not was[1]:
                gone.append(member_id)
        elif r.last_activity_at is not None and (
            was is None or was[0] != r.last_activity_at or was[1]
        ):
            active.append((member_id, r.last_activity_at))
    await inactivity_due.track_activity(conn, active, gone)
