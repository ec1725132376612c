"""Ingestion: validated events -> identity resolution -> one append transaction per batch.

`Ingestor.ingest(events)` is the single road in for the HTTP API, the Segment-compatible
endpoints and bulk import. For a batch it:

1. applies the rules pydantic cannot know (clock skew, reserved types) and drops repeated
   event ids inside the batch (answered as duplicates of the first);
2. before any transaction: plans the members of the batch with one query
   (`journeyman.engine.identity`), seals the personal properties of every event under its member's
   data key (every property outside `JOURNEYMAN_INGEST_CLEAR_PROPERTIES`, and `traits`
   always: `journeyman.engine.identity.sealing.seal_event`) and encodes the appends;
3. in one short transaction: locks the batch's streams (`event_store.lock_streams`) and the
   members the plan read, checks the plan still holds, appends every event to its member's
   stream `member-<id>` (the store answers event ids it already holds as duplicates and
   stores them once), and stores the identity decisions (new members, data keys, aliases,
   merges);
4. answers one outcome per event, in request order.

A rejected event stores nothing; accepted events are committed before the answer.
Concurrent batches over the same streams queue on the stream locks and never conflict.
What can still collide is identity: two batches creating the same new alias or member id
end in a unique violation, and a member merged or erased after the plan read it raises
`IdentityChanged`; the batch is then planned again from the start, after a short jittered
pause (`journeyman_ingest_retries_total` counts them).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from journeyman.engine.core import metrics
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import IdentityResolver
from journeyman.engine.identity.aliases import (
    DEVICE_ID,
    EMAIL,
    EXTERNAL_PREFIX,
    PHONE,
    USER_ID,
    Alias,
    Claim,
)
from journeyman.engine.identity.aliases import PushSubscription as PushRef
from journeyman.engine.identity.crypto import DataKey, Keyring
from journeyman.engine.identity.resolver import ErasedMembers, IdentityChanged, Resolution
from journeyman.engine.identity.sealing import personal_names, seal_event
from journeyman.engine.ingest.models import (
    RESERVED_TYPES,
    EventIn,
    FieldError,
    IngestResult,
    field_errors,
    storage_errors,
)
from journeyman.engine.ingest.storable import time_problem
from journeyman.event_store import (
    ANY,
    AppendResult,
    ConcurrencyError,
    InvalidEventError,
    NewEvent,
    PostgresEventStore,
    PreparedBatch,
    lock_streams,
)
from journeyman.event_store.retry import retry_lost_races
from pydantic import TypeAdapter, ValidationError

SCHEMA_VERSION = 1
_ATTEMPTS = 12
_RETRYABLE = (
    ConcurrencyError,  # the store's "retry the whole transaction" (ANY never conflicts)
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    IdentityChanged,  # a member the batch read was merged or erased before it was locked
)
EVENT_ADAPTER: TypeAdapter[EventIn] = TypeAdapter(EventIn)

Amend = Callable[[asyncpg.Connection, list[EventIn], list[str]], Awaitable[dict[int, dict]]]
"""A caller's step inside the append transaction, after identity resolution: given the
batch's events and their member ids, it returns new properties for some of them, by
position (the Segment endpoints fold cart changes this way: `journeyman.engine.ingest.carts`). It
runs again if the transaction is retried, and may add only properties kept in clear."""


def stream_of(member_id: str) -> str:
    return f"member-{member_id}"


def claim_of(event: EventIn, clear: frozenset[str] = frozenset()) -> Claim:
    m = event.member
    aliases: list[Alias] = []
    if m.id:
        # The client's id is an alias: the member's id in the store is the engine's own.
        aliases.append(Alias(USER_ID, m.id))
    if m.email:
        aliases.append(Alias(EMAIL, m.email))
    if m.phone:
        aliases.append(Alias(PHONE, m.phone))
    if m.device_id:
        aliases.append(Alias(DEVICE_ID, m.device_id))
    for system, value in m.external_ids.items():
        aliases.append(Alias(EXTERNAL_PREFIX + system, value))
    push = tuple(
        PushRef(p.type, p.identity, p.model_dump(exclude_none=True)) for p in m.push_subscriptions
    )
    return Claim(
        event_id=event.event_id,
        aliases=tuple(aliases),
        push=push,
        occurred_at=event.occurred_at,
        type=event.type,
        seal=bool(event.properties) and bool(personal_names(event.properties, clear)),
    )


def _outcome(
    index: int,
    event_id: str | None,
    status: str,
    *,
    member_id: str | None = None,
    global_position: int | None = None,
    errors: list[FieldError] | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": event_id,
        "status": status,
        "member_id": member_id,
        "global_position": global_position,
        "errors": errors or [],
    }


class Ingestor:
    """Validates, resolves and appends batches of events. One per process is enough."""

    def __init__(
        self,
        store: PostgresEventStore,
        settings: Settings,
        keyring: Keyring | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.keyring = keyring or Keyring(settings.resolved_secret())
        self.resolver = IdentityResolver(self.keyring)
        self.clear = frozenset(settings.ingest_clear_properties)
        self.earliest = settings.ingest_earliest_occurred_at

    # ------------------------------------------------------------------ entry points
    async def ingest_raw(
        self,
        items: Sequence[Any],
        *,
        source: str = "api",
        key_id: str | None = None,
        amend: Amend | None = None,
    ) -> IngestResult:
        """Validate plain JSON values one by one, then ingest the valid ones."""
        events: list[EventIn | list[FieldError]] = []
        for i, item in enumerate(items):
            try:
                events.append(EVENT_ADAPTER.validate_python(item))
            except ValidationError as exc:
                events.append(field_errors(exc, f"events[{i}]"))
        return await self.ingest(events, source=source, key_id=key_id, amend=amend)

    async def ingest(
        self,
        events: Sequence[EventIn | list[FieldError]],
        *,
        source: str = "api",
        key_id: str | None = None,
        amend: Amend | None = None,
    ) -> IngestResult:
        """Ingest a batch; items that are already a list of errors are answered as rejected."""
        now = dt.datetime.now(dt.UTC)
        skew = dt.timedelta(seconds=self.settings.ingest_future_skew_seconds)
        # Outcomes are plain dicts until the end: one validation of the whole result is far
        # cheaper than building hundreds of models one by one.
        outcomes: list[dict[str, Any] | None] = [None] * len(events)
        first_index: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        valid: list[int] = []
        for i, e in enumerate(events):
            if isinstance(e, list):
                outcomes[i] = _outcome(i, None, "rejected", errors=e)
                continue
            errors = self._rule_errors(i, e, now + skew)
            if errors:
                outcomes[i] = _outcome(i, e.event_id, "rejected", errors=errors)
            elif e.event_id in first_index:
                repeats.append((i, first_index[e.event_id]))
            else:
                first_index[e.event_id] = i
                valid.append(i)
        if valid:
            batch: list[tuple[int, EventIn]] = [(i, events[i]) for i in valid]  # type: ignore[misc]
            try:
                await self._store(batch, outcomes, source, key_id, amend)
            except InvalidEventError:
                # The store refused content (NUL, non-finite number): find which events.
                storable = []
                for i, e in batch:
                    errors = storage_errors(e, i)
                    if errors:
                        outcomes[i] = _outcome(i, e.event_id, "rejected", errors=errors)
                    else:
                        storable.append((i, e))
                if len(storable) == len(batch):
                    raise
                if storable:
                    await self._store(storable, outcomes, source, key_id, amend)
        for i, first in repeats:
            o = outcomes[first]
            assert o is not None
            outcomes[i] = {**o, "index": i, "status": "duplicate"}
        done = [o for o in outcomes if o is not None]
        counts = Counter(o["status"] for o in done)
        return IngestResult.model_validate(
            {
                "accepted": counts["accepted"],
                "duplicates": counts["duplicate"],
                "rejected": counts["rejected"],
                "results": done,
            }
        )

    # ------------------------------------------------------------------ internals
    def _rule_errors(self, i: int, e: EventIn, latest: dt.datetime) -> list[FieldError]:
        errors: list[FieldError] = []
        if e.type in RESERVED_TYPES:
            errors.append(
                FieldError(
                    field=f"events[{i}].type",
                    reason=f"{e.type} is reserved: only the engine appends it",
                )
            )
        if e.occurred_at < self.earliest:
            errors.append(
                FieldError(
                    field=f"events[{i}].occurred_at",
                    reason=str(time_problem(e.occurred_at, self.earliest, latest)),
                )
            )
        elif e.occurred_at > latest:
            errors.append(
                FieldError(
                    field=f"events[{i}].occurred_at",
                    reason=f"{e.occurred_at.isoformat()} is in the future (more than "
                    f"{self.settings.ingest_future_skew_seconds:g} s of clock skew)",
                )
            )
        return errors

    async def _store(
        self,
        batch: list[tuple[int, EventIn]],
        outcomes: list[dict[str, Any] | None],
        source: str,
        key_id: str | None,
        amend: Amend | None = None,
    ) -> None:
        metadata: dict[str, Any] = {"source": source, "schema_version": SCHEMA_VERSION}
        if key_id:
            metadata["api_key"] = key_id
        started = time.perf_counter()

        async def once() -> dict[str, AppendResult] | None:
            nonlocal batch
            while True:
                try:
                    return await self._attempt(batch, metadata, amend)
                except ErasedMembers as exc:
                    # Not a lost race: answer those events and store the rest at once.
                    batch = await self._refuse_erased(batch, exc, outcomes)
                    if not batch:
                        return None

        # Batches that lost a race to another are planned and run again after a jittered
        # pause, so that they spread out.
        appended = await retry_lost_races(
            once,
            on=_RETRYABLE,
            attempts=_ATTEMPTS,
            retried=lambda exc: metrics.INGEST_RETRIES.labels(type(exc).__name__).inc(),
        )
        if appended is None:
            return
        metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
        metrics.record_ingested(e.type for _, e in batch if not appended[e.event_id].duplicate)
        for i, e in batch:
            r = appended[e.event_id]
            outcomes[i] = _outcome(
                i,
                e.event_id,
                "duplicate" if r.duplicate else "accepted",
                member_id=r.stream_id.removeprefix("member-"),
                global_position=r.global_position,
            )

    async def _attempt(
        self,
        batch: list[tuple[int, EventIn]],
        metadata: dict[str, Any],
        amend: Amend | None,
    ) -> dict[str, AppendResult]:
        """Plan outside any transaction, then lock, check, append and write in a short one.

        All the Python work (identity decisions, data keys, sealing, JSON) is done before
        the transaction opens, so it holds its locks only for its own statements. Streams
        are locked first (before anything gives the transaction an id: see
        `event_store.lock_streams`), then the members the plan read; a plan that no longer
        holds raises one of `_RETRYABLE` and is made again.
        """
        claims = [claim_of(e, self.clear) for _, e in batch]
        async with self.store.pool.acquire() as conn:
            resolution = await self.resolver.plan(conn, claims)
            prepared, places = self._prepare(batch, claims, resolution, metadata)
            async with conn.transaction():
                await lock_streams(conn, prepared.stream_ids)
                await self.resolver.lock(conn, resolution)
                if amend is not None:
                    amended = await amend(conn, [e for _, e in batch], resolution.member_ids)
                    for j, data in amended.items():
                        # Only the changed events are sealed and encoded again here.
                        k, at = places[j]
                        member_id = resolution.member_ids[j]
                        e = batch[j][1]
                        like = prepared.items[k][1][at]
                        sealed = self._sealed(e, claims[j], data, resolution.keys.get(member_id))
                        prepared.replace(
                            k,
                            at,
                            NewEvent(
                                e.type,
                                sealed,
                                like.metadata,
                                event_id=e.event_id,
                                occurred_at=e.occurred_at,
                            ),
                        )
                results = await self.store.append_batch(prepared, conn=conn)
                await self.resolver.write(conn, resolution)
        return {r.event_id: r for r in results}

    async def _refuse_erased(
        self,
        batch: list[tuple[int, EventIn]],
        exc: ErasedMembers,
        outcomes: list[dict[str, Any] | None],
    ) -> list[tuple[int, EventIn]]:
        """Answer the events that name an erased member and return the rest of the batch.

        Storing them would start a new record of a person who asked to be forgotten. An event
        stored before the erasure and sent again is still answered `duplicate`. The check runs
        inside the ingest transaction, on the locked members (`IdentityResolver.resolve`), so
        an erasure committing in between cannot be missed."""
        hit = [batch[j] for j in exc.claims]
        stored = {
            r["event_id"]: r
            for r in await self.store.pool.fetch(
                "SELECT event_id, stream_id, global_position FROM events "
                "WHERE event_id = ANY($1::text[])",
                [e.event_id for _, e in hit],
            )
        }
        for i, e in hit:
            row = stored.get(e.event_id)
            if row is not None:
                outcomes[i] = _outcome(
                    i,
                    e.event_id,
                    "duplicate",
                    member_id=row["stream_id"].removeprefix("member-"),
                    global_position=row["global_position"],
                )
                continue
            field = "member.id" if e.member.id else "member"
            outcomes[i] = _outcome(
                i,
                e.event_id,
                "rejected",
                errors=[
                    FieldError(
                        field=f"events[{i}].{field}",
                        reason="this member was erased: no new events for it",
                    )
                ],
            )
        drop = set(exc.claims)
        return [b for j, b in enumerate(batch) if j not in drop]

    def _sealed(
        self, e: EventIn, claim: Claim, data: dict[str, Any], key: DataKey | None
    ) -> dict[str, Any]:
        if not claim.seal:
            return data
        assert key is not None, "the resolver loads the data key of every claim to seal"
        try:
            return seal_event(data, key, e.event_id, self.clear)
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(str(exc)) from exc

    def _prepare(
        self,
        fresh: list[tuple[int, EventIn]],
        claims: list[Claim],
        resolution: Resolution,
        metadata: dict[str, Any],
    ) -> tuple[PreparedBatch, list[tuple[int, int]]]:
        """The batch's appends, sealed and encoded, and where each claim's event sits in
        them (item, index).

        Events already stored come back from the store as duplicates. Resolving them again
        is harmless: their aliases and members exist since their first time, so they link
        nothing new (and system events have derived ids, so nothing is appended twice).
        """
        streams: dict[str, list[NewEvent]] = {}
        metas: dict[tuple[str, ...], dict[str, Any]] = {}
        spots: list[tuple[str, int]] = []
        for j, (_, e) in enumerate(fresh):
            for member_id, system_event in resolution.system_events.get(j, ()):
                streams.setdefault(stream_of(member_id), []).append(system_event)
            kinds = tuple(a.kind for a in claims[j].aliases)
            meta = metas.get(kinds)
            if meta is None:
                meta = metas[kinds] = {**metadata, "aliases": list(kinds)} if kinds else metadata
            member_id = resolution.member_ids[j]
            data = self._sealed(e, claims[j], e.properties, resolution.keys.get(member_id))
            events = streams.setdefault(stream_of(member_id), [])
            spots.append((stream_of(member_id), len(events)))
            events.append(
                NewEvent(e.type, data, meta, event_id=e.event_id, occurred_at=e.occurred_at)
            )
        # Streams in a fixed (sorted) order: concurrent batches touching the same streams
        # then meet in the same order.
        order = sorted(streams)
        item_of = {stream: k for k, stream in enumerate(order)}
        prepared = self.store.prepare([(stream, streams[stream], ANY) for stream in order])
        return prepared, [(item_of[stream], at) for stream, at in spots]
