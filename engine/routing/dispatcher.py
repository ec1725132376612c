"""The dispatcher: routes store events to journeys.

It subscribes to the member streams (catch-up from its checkpoint, then live) for exactly
the event types some journey declared, plus the journeys' own `journey.entered` /
`journey.exited` (which it folds into the `journey_instances` projection).

* A trigger event signal-with-starts the run `journey/<name>/<member>[/<key>]` — unless the
  member may not re-enter yet, or the event is older than the journey's freshness window
  (imports and backfills are stored and projected but start nothing).
* Any other routed event goes as a plain signal to the member's *running* instances (from
  `journey_instances`, so a page view of a member in no journey is not Temporal traffic);
  Temporal saying "not found" is a no-op that clears the stale row. A late order never
  starts a cart journey.
* A batch asks the database once: the running instances of all its members and the rows
  its fresh triggers name, in one statement, on one connection held for the batch. Each
  trigger then costs at most two statements (usually one: the start and its trigger noted
  together), a stale one none, an event that routes nowhere none.
* The checkpoint is saved after Temporal has accepted every signal of a batch: delivery is
  at-least-once and journeys drop events whose store position they have seen.
* Partitions (`partition`/`partitions`, member-hash like the store's consumer groups) scale
  it out; each partition has its own checkpoint and keeps each member's events in order.
  Every dispatcher must be started with the same partition count.
* No event halts it: one that cannot be decoded, or whose routing keeps failing (other than
  by an outage), is parked as a dead letter (`journeyman.engine.core.parking`) and the rest
  go on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from journeyman.engine.activities import instances as inst
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.engine.core.parking import Attempts, announce, describe, is_transient, park
from journeyman.engine.core.readers import DISPATCHER as SUBSCRIPTION
from journeyman.engine.identity.sealing import SEALED
from journeyman.engine.routing.batch import RoutingBatch, SerialConnection
from journeyman.event_store import PostgresEventStore, RecordedEvent, Subscription, UndecodableEvent
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)

MEMBER_PREFIX = "member-"


def journey_event(event: RecordedEvent) -> JourneyEvent:
    """What a journey sees of an event: its properties in clear (the sealed personal ones
    are left out: journeys read only the clear ones, `JOURNEYMAN_INGEST_CLEAR_PROPERTIES`)."""
    data = event.data
    if SEALED in data:
        data = {k: v for k, v in data.items() if k != SEALED}
    return JourneyEvent(
        position=event.global_position,
        type=event.type,
        data=data,
        event_id=event.event_id,
        stream_id=event.stream_id,
        occurred_at=event.occurred_at,
    )


def sealed_trigger_keys(journeys: Mapping[str, type], clear: Iterable[str]) -> dict[str, str]:
    """Journeys whose trigger key is not among the clear properties, with that key: ingestion
    seals it, so the dispatcher never sees it and such a journey never starts."""
    allowed = set(clear)
    out = {}
    for name, cls in journeys.items():
        key = cls.__journey__.trigger.key
        if key is not None and key not in allowed:
            out[name] = key
    return out


def check_partition(partition: int, partitions: int) -> None:
    """Refuse a partition outside `0..partitions-1` (it would route every member under a
    checkpoint of its own, replaying the whole store)."""
    if partitions < 1:
        raise ValueError(
            f"the dispatcher partition count must be at least 1, not {partitions} "
            "(JOURNEYMAN_DISPATCHER_PARTITIONS or --partitions)"
        )
    if not 0 <= partition < partitions:
        raise ValueError(
            f"dispatcher partition {partition} is outside 0..{partitions - 1}: the partition "
            f"count is {partitions} (JOURNEYMAN_DISPATCHER_PARTITIONS or --partitions); every "
            "dispatcher must use the same count"
        )


class Dispatcher:
    def __init__(
        self,
        store: PostgresEventStore,
        client: Client,
        journeys: Mapping[str, type],
        *,
        task_queue: str = "journeyman",
        journey_settings: Mapping[str, Mapping[str, Any]] | None = None,
        activity_types: Iterable[str] | None = None,
        partition: int = 0,
        partitions: int = 1,
        name: str = SUBSCRIPTION,
        batch_size: int = 500,
        concurrency: int = 32,
        clock: Callable[[], dt.datetime] | None = None,
        on_routed: Callable[[RecordedEvent, str, str], None] | None = None,
        dead_letter_attempts: int = 3,
    ) -> None:
        check_partition(partition, partitions)
        self.store = store
        self.client = client
        self.task_queue = task_queue
        self.partition = partition
        self.partitions = partitions
        self.name = name
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.on_routed = on_routed
        self.activity_types = list(activity_types) if activity_types is not None else None
        overrides = journey_settings or {}
        self.specs: dict[str, Any] = {}
        self.settings: dict[str, Any] = {}
        self.routes: dict[str, list[Any]] = defaultdict(list)
        for jname, cls in journeys.items():
            spec = cls.__journey__
            settings = spec.resolve_settings(overrides.get(jname), activity_types=activity_types)
            if not settings.enabled:
                continue
            self.specs[jname] = spec
            self.settings[jname] = settings
            for event_type in spec.event_types(settings.activity_types):
                self.routes[event_type].append(spec)
        self.types = sorted(set(self.routes) | {"journey.entered", "journey.exited"})
        self.stats: Counter[str] = Counter()
        self.attempts = Attempts(dead_letter_attempts)
        self._subscription: Subscription | None = None
        self._stopped = False

    # ------------------------------------------------------------------ running
    def subscription(self, *, follow: bool = True) -> Subscription:
        return self.store.subscribe(
            self.name,
            types=self.types,
            category="member",
            partition=self.partition,
            partitions=self.partitions,
            batch_size=self.batch_size,
            auto_checkpoint=False,
            follow=follow,
        )

    async def run(self, *, follow: bool = True, retry_delay: float = 1.0) -> None:
        """Dispatch until `stop()` (or, without `follow`, until caught up). A failed batch is
        not checkpointed: after `retry_delay` the dispatcher resumes from its checkpoint."""
        self._stopped = False
        while not self._stopped:
            self._subscription = self.subscription(follow=follow)
            try:
                async for events, cursor in self._subscription.batches():
                    await self.handle(events)
                    for u in self._subscription.undecodable:
                        await self._park(u, u.error)
                    await self._subscription.save_checkpoint(cursor)
                    self.stats["batches"] += 1
                    if self._stopped:
                        break
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher %s batch failed; resuming from checkpoint", self.name)
                self.stats["failures"] += 1
                await asyncio.sleep(retry_delay)

    def stop(self) -> None:
        self._stopped = True
        if self._subscription is not None:
            self._subscription.close()

    # ------------------------------------------------------------------ routing
    async def handle(self, events: list[RecordedEvent]) -> None:
        """Route one batch: members concurrently, each member's events in store order.

        The batch costs one look-up (`journey_instances.load_views`) on one connection; what
        routing writes comes back into that view, so an event following a trigger in the same
        batch reaches the run the trigger has just begun."""
        by_member: dict[str, list[RecordedEvent]] = defaultdict(list)
        for event in events:
            if event.stream_id.startswith(MEMBER_PREFIX):
                by_member[event.stream_id[len(MEMBER_PREFIX) :]].append(event)
        if not by_member:
            return
        sem = asyncio.Semaphore(self.concurrency)
        async with self.store.pool.acquire() as conn:
            batch = await self._batch(SerialConnection(conn), by_member)

            async def one_member(member_id: str, evs: list[RecordedEvent]) -> None:
                async with sem:
                    for e in evs:
                        await self._route_or_park(batch, member_id, e)

            await asyncio.gather(*(one_member(m, evs) for m, evs in by_member.items()))

    async def _batch(
        self, db: SerialConnection, by_member: dict[str, list[RecordedEvent]]
    ) -> RoutingBatch:
        batch = RoutingBatch(db=db, by_member=by_member, now=self.clock())
        await self._load(batch, list(by_member))
        return batch

    async def _load(self, batch: RoutingBatch, member_ids: list[str]) -> None:
        """Load the view of `member_ids` in one statement. Freshness is judged from the event
        itself first: a stale trigger needs no row of its own (only the member's running
        ones), and a member whose events route nowhere is not asked about at all."""
        members: list[str] = []
        workflow_ids: list[str] = []
        triggers: list[tuple[str, str]] = []
        for member_id in member_ids:
            routed = False
            for e in batch.by_member[member_id]:
                for spec in self.routes.get(e.type, ()):
                    routed = True
                    if self._may_start(spec, e, batch.now):
                        workflow_ids.append(spec.workflow_id(member_id, spec.key_of(e.data)))
                        triggers.append((member_id, e.event_id))
            if routed:
                members.append(member_id)
        if not members:
            return
        self.stats["view_loads"] += 1
        batch.views.update(await inst.load_views(batch.db, members, workflow_ids, triggers))

    def _stale(self, settings: Any, event: RecordedEvent, now: dt.datetime) -> bool:
        return settings.freshness is not None and event.occurred_at < now - settings.freshness

    def _may_start(self, spec: Any, event: RecordedEvent, now: dt.datetime) -> bool:
        settings = self.settings[spec.name]
        return spec.starts_on(event.type, event.data, settings.activity_types) and not self._stale(
            settings, event, now
        )

    async def _route_or_park(
        self, batch: RoutingBatch, member_id: str, event: RecordedEvent
    ) -> None:
        """Route one event, trying again on failure; after the attempt limit, park it. An
        outage is raised (the batch is retried from the checkpoint), never counted."""
        while True:
            try:
                await self.route(member_id, event, batch)
            except Exception as exc:
                if is_transient(exc):
                    raise
                n, first = self.attempts.fail(event.global_position)
                if n < self.attempts.limit:
                    log.warning(
                        "dispatcher %s: routing event %s failed (attempt %d of %d): %s",
                        self.name,
                        event.event_id,
                        n,
                        self.attempts.limit,
                        describe(exc),
                    )
                    await self.attempts.pause(n)
                    # The failed attempt may have written part of its work: ask again.
                    batch.views.pop(member_id, None)
                    await self._load(batch, [member_id])
                    continue
                await self._park(event, describe(exc), attempts=n, first_failed_at=first)
            self.attempts.clear(event.global_position)
            return

    async def _park(
        self,
        event: RecordedEvent | UndecodableEvent,
        error: str,
        *,
        attempts: int = 1,
        first_failed_at: dt.datetime | None = None,
    ) -> None:
        await park(
            self.store.pool,
            self.name,
            event,
            error,
            attempts=attempts,
            first_failed_at=first_failed_at,
            partition=self.partition,
            partitions=self.partitions,
        )
        announce(self.name, event, error)
        self.stats["dead_letters"] += 1

    async def reprocess(self, event: RecordedEvent) -> None:
        """Route one (parked) event again, as the dispatcher would have."""
        if not event.stream_id.startswith(MEMBER_PREFIX):
            raise ValueError(f"event {event.event_id} is not on a member stream")
        member_id = event.stream_id[len(MEMBER_PREFIX) :]
        async with self.store.pool.acquire() as conn:
            batch = await self._batch(SerialConnection(conn), {member_id: [event]})
            await self.route(member_id, event, batch)

    async def route(self, member_id: str, event: RecordedEvent, batch: RoutingBatch) -> None:
        self.stats["events"] += 1
        view = batch.views.setdefault(member_id, inst.MemberView())
        if event.type == "journey.entered":
            await self._fold_entered(batch, view, member_id, event)
        elif event.type == "journey.exited":
            await self._fold_exited(batch, view, event)
        for spec in self.routes.get(event.type, ()):
            if spec.is_trigger(event.type, event.data):
                await self._trigger(batch, view, spec, member_id, event)
            else:
                await self._signal_running(batch, view, spec, event)

    async def _trigger(
        self,
        batch: RoutingBatch,
        view: inst.MemberView,
        spec: Any,
        member_id: str,
        event: RecordedEvent,
    ) -> None:
        """A trigger: to the run it belongs to if one is running, else a new run. At most two
        statements (a stale row cleared, the start recorded), usually one, none if stale."""
        settings = self.settings[spec.name]
        key = spec.key_of(event.data)
        if spec.trigger.key is not None and key is None:
            self.stats["trigger_without_key"] += 1
            return
        stale = self._stale(settings, event, batch.now)
        workflow_id = spec.workflow_id(member_id, key)
        row = view.rows.get(workflow_id)
        if (
            row is not None
            and row.last_trigger_version is not None
            and event.stream_version <= row.last_trigger_version
        ):
            # Already handed to a run (a re-delivery after a restart): never a second start.
            self.stats["trigger_replayed"] += 1
            return
        if row is not None and row.running:
            # The run it belongs to hears of it (an import does too; it just starts nothing).
            if await self._signal(batch, view, workflow_id, event):
                if not stale:
                    view.keep(await inst.note_trigger(batch.db, workflow_id, event.stream_version))
                return
            row = view.rows.get(workflow_id)
        if stale:
            self.stats["stale_trigger"] += 1
            return
        if not spec.starts_on(event.type, event.data, settings.activity_types):
            self.stats["not_a_start"] += 1
            return
        if row is not None and not spec.reentry.allows(
            entries=row.entries + (1 if row.pending else 0),
            exited_at=row.exited_at,
            now=batch.now,
        ):
            self.stats["reentry_blocked"] += 1
            return
        if (spec.name, event.event_id) in view.entered:
            # Started before a crash that came before the trigger was noted.
            if row is not None:
                view.keep(await inst.note_trigger(batch.db, workflow_id, event.stream_version))
            self.stats["trigger_replayed"] += 1
            return
        jev = journey_event(event)
        try:
            handle = await self.client.start_workflow(
                spec.name,
                JourneyInput(
                    member_id=member_id,
                    key=key,
                    trigger=jev,
                    settings=settings.model_dump(mode="json"),
                ),
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=spec.id_reuse_policy(),
                start_signal=EVENT_SIGNAL,
                start_signal_args=[jev],
            )
        except WorkflowAlreadyStartedError:
            self.stats["reentry_rejected"] += 1
            return
        # The entry the call reached (new, or a run the view did not know as running):
        # recorded with the trigger in one statement, which says whether the entry is new.
        entry_id = inst.entry_of(handle)
        row, started = await inst.mark_started(
            batch.db,
            workflow_id=workflow_id,
            journey=spec.name,
            member_id=member_id,
            key=key,
            entry_id=entry_id,
            new_run=entry_id is not None,
            trigger_version=event.stream_version,
        )
        view.keep(row)
        self.stats["started" if started else "signalled"] += 1
        if self.on_routed is not None:
            self.on_routed(event, workflow_id, "start" if started else "signal")

    async def _signal_running(
        self, batch: RoutingBatch, view: inst.MemberView, spec: Any, event: RecordedEvent
    ) -> None:
        rows = view.running(spec.name)
        if not rows:
            self.stats["skipped"] += 1
            return
        key = spec.key_of(event.data)
        for row in rows:
            if key is not None and row.key is not None and row.key != key:
                continue
            await self._signal(batch, view, row.workflow_id, event)

    async def _signal(
        self, batch: RoutingBatch, view: inst.MemberView, workflow_id: str, event: RecordedEvent
    ) -> bool:
        """Signal a running journey; False (and the row cleared) when none is running."""
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                EVENT_SIGNAL, journey_event(event)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            self.stats["not_found"] += 1
            row = await inst.mark_gone(batch.db, workflow_id)
            if row is None:
                view.rows.pop(workflow_id, None)
            else:
                view.keep(row)
            return False
        self.stats["signalled"] += 1
        if self.on_routed is not None:
            self.on_routed(event, workflow_id, "signal")
        return True

    # ------------------------------------------------------------------ projection
    async def _fold_entered(
        self, batch: RoutingBatch, view: inst.MemberView, member_id: str, event: RecordedEvent
    ) -> None:
        d = event.data
        if not d.get("workflow_id") or not d.get("entry_id"):
            return
        row = await inst.fold_entered(
            batch.db,
            workflow_id=d["workflow_id"],
            journey=d.get("journey", ""),
            member_id=member_id,
            key=d.get("key"),
            entry_id=d["entry_id"],
            variant=d.get("variant"),
            holdout=d.get("holdout"),
            at=event.occurred_at,
        )
        view.keep(row)

    async def _fold_exited(
        self, batch: RoutingBatch, view: inst.MemberView, event: RecordedEvent
    ) -> None:
        d = event.data
        if not d.get("workflow_id") or not d.get("entry_id"):
            return
        row = await inst.fold_exited(
            batch.db,
            workflow_id=d["workflow_id"],
            entry_id=d["entry_id"],
            reason=str(d.get("reason", "")),
            converted=bool(d.get("converted")),
            at=event.occurred_at,
        )
        view.keep(row)
