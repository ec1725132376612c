"""Activities the journey kit and the inactivity scan call. Journeys reach side effects only
through these. The scan also runs `refresh_segments`, which re-evaluates the segments of
members whose time-based profile fields can have changed.

`JourneyActivities(store, ...)` holds the connections; `.all()` lists the activity callables
for a worker. Tests register the same object against their own database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from journeyman.engine.contracts.delivery import DELIVER, SendOutcome, SendRequest
from journeyman.engine.contracts.journeys import (
    JourneyInput,
    JourneyRecord,
    ProfileRequest,
    ScanRequest,
    ScanResult,
    SegmentRefreshRequest,
    SegmentRefreshResult,
)
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.core import metrics
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.profiles import inactivity_due
from journeyman.engine.profiles.segment_refresh import refresh, refresh_due
from journeyman.engine.segments.membership import RefreshResult, Segments, segment_list
from journeyman.event_store import NewEvent, PostgresEventStore
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from . import instances
from .heartbeat import with_heartbeats
from .outbox import OutboxDelivery

log = logging.getLogger(__name__)

DeliverFn = Callable[[SendRequest], Any]


class JourneyActivities:
    """The activities, bound to a store (and, for the scan, a Temporal client and the
    registered journeys). `segments` (for `refresh_segments`): by default every plugin's,
    looked up on first use; `settings`: by default the environment's (RFM thresholds and
    lifecycle stages)."""

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        client: Client | None = None,
        journeys: Mapping[str, type] | None = None,
        task_queue: str = "journeyman",
        journey_settings: Mapping[str, Mapping[str, Any]] | None = None,
        activity_types: list[str] | None = None,
        deliver_impl: DeliverFn | None = None,
        segments: Segments | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.journeys = dict(journeys or {})
        self.task_queue = task_queue
        self.journey_settings = dict(journey_settings or {})
        self.activity_types = activity_types
        self._deliver_impl = deliver_impl or OutboxDelivery(store).deliver
        self._segments = None if segments is None else segment_list(segments)
        self._settings = settings

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.record_journey_event,
            self.load_profile,
            self.deliver,
            self.scan_inactive,
            self.refresh_segments,
        ]

    @activity.defn(name="record_journey_event")
    async def record_journey_event(self, record: JourneyRecord) -> int:
        """Append a journey event to the member's stream (idempotent by event id)."""
        data = {
            "journey": record.journey,
            "workflow_id": record.workflow_id,
            "entry_id": record.entry_id,
            **record.data,
        }
        results = await self.store.append(
            f"member-{record.member_id}",
            [
                NewEvent(
                    record.type,
                    data,
                    {"source": "journey", "correlation_id": record.workflow_id},
                    event_id=record.event_id,
                )
            ],
        )
        return results[0].global_position

    @activity.defn(name="load_profile")
    async def load_profile(self, request: ProfileRequest) -> MemberProfile | None:
        """The member's profile from the profile projection, or None for an unknown member."""
        try:
            from journeyman.engine.profiles import get_profile
        except ImportError:  # the profile projection is not installed: fall back to the row
            return await self._profile_row(request.member_id)
        return await get_profile(self.store.pool, request.member_id)

    async def _profile_row(self, member_id: str) -> MemberProfile | None:
        row = await self.store.pool.fetchrow(
            "SELECT * FROM member_profiles WHERE member_id = $1", member_id
        )
        if row is None:
            return None
        fields = set(MemberProfile.model_fields)
        return MemberProfile.model_validate({k: v for k, v in dict(row).items() if k in fields})

    @activity.defn(name=DELIVER)
    async def deliver(self, request: SendRequest) -> SendOutcome:
        """Send one message (see `delivery_contract`)."""
        result = self._deliver_impl(request)
        if asyncio.iscoroutine(result):
            result = await with_heartbeats(result)
        metrics.record_delivery(result.channel, result.status, result.reason)
        return result

    # ------------------------------------------------------------------ inactivity scan
    @activity.defn(name="scan_inactive_members")
    async def scan_inactive(self, request: ScanRequest) -> ScanResult:
        """Start the runs of members who are due for each inactivity journey, reading only
        their rows of `inactivity_due` (by its partial index on `due_at`), a page at a time:
        a page's runs are started concurrently (at most `start_concurrency` at once) and
        marked started in one statement. One scan per journey at a time (a second one skips
        it, `busy`). See `journeyman.engine.profiles.inactivity_due`."""
        if self.client is None:
            raise RuntimeError("scan_inactive_members needs a Temporal client")
        now = request.now or dt.datetime.now(dt.UTC)
        result = ScanResult()
        names = request.journeys or [
            n for n, c in self.journeys.items() if c.__journey__.trigger.kind == "inactivity"
        ]
        for name in names:
            spec = self.journeys[name].__journey__
            settings = spec.resolve_settings(
                self.journey_settings.get(name), activity_types=self.activity_types
            )
            if not settings.enabled:
                continue
            async with self.store.pool.acquire() as conn, conn.transaction():
                await inactivity_due.register(
                    conn,
                    inactivity_due.InactivityJourney(
                        journey=name,
                        inactive_days=float(settings.inactive_days),
                        reentry=spec.reentry.mode,
                        cooldown=spec.reentry.cooldown,
                        workflow_prefix=spec.workflow_id(""),
                    ),
                )
            payload = settings.model_dump(mode="json")
            async with self.store.pool.acquire() as lock:
                if not await inactivity_due.try_lock_scan(lock, name):
                    log.info("inactivity scan of %s skipped: another scan holds it", name)
                    result.busy.append(name)
                    continue
                try:
                    await self._scan_journey(spec, now, payload, request, result)
                finally:
                    await inactivity_due.unlock_scan(lock, name)
        return result

    @activity.defn(name="refresh_segments")
    async def refresh_segments(self, request: SegmentRefreshRequest) -> SegmentRefreshResult:
        """Evaluate segments as of `request.now`: by default only of the members whose
        time-based profile fields can have changed (`segment_refresh.refresh_due`); with
        `full`, every member's (`segment_refresh.refresh`, whose cursor is heartbeated after
        each page: a retried attempt resumes where the last one stopped)."""
        if self._segments is None:
            from journeyman.engine.segments import registered_segments

            self._segments = segment_list(registered_segments())
        now = request.now or dt.datetime.now(dt.UTC)
        details = activity.info().heartbeat_details
        resume: dict[str, Any] = dict(details[0]) if details else {}
        before = SegmentRefreshResult(**resume.get("result", {}))

        def totals(r: RefreshResult) -> SegmentRefreshResult:
            return SegmentRefreshResult(
                examined=before.examined + r.examined,
                pages=before.pages + r.pages,
                entered=before.entered + len(r.changes.entered),
                exited=before.exited + len(r.changes.exited),
                deferred=before.deferred + len(r.changes.deferred),
                failed=before.failed + r.changes.failed,
                behind=r.behind,
            )

        def page(r: RefreshResult) -> None:
            activity.heartbeat({"cursor": r.cursor, "result": totals(r).model_dump()})

        if not request.full:
            result = await refresh_due(
                self.store,
                self._segments,
                settings=self._settings or get_settings(),
                now=now,
                page_size=request.page_size,
                on_page=page,
            )
            return totals(result)
        result = await refresh(
            self.store,
            self._segments,
            settings=self._settings or get_settings(),
            now=now,
            page_size=request.page_size,
            after=resume.get("cursor"),
            on_page=page,
        )
        return totals(result)

    async def _scan_journey(
        self,
        spec: Any,
        now: dt.datetime,
        payload: dict[str, Any],
        request: ScanRequest,
        result: ScanResult,
    ) -> None:
        """Read the journey's due rows a page at a time (by index, from a cursor) and start
        each page's runs; the caller holds the journey's scan lock."""
        after: inactivity_due.Due | None = None
        while True:
            began = time.perf_counter()
            page = await inactivity_due.due_page(
                self.store.pool, spec.name, now, after, request.page_size
            )
            result.seconds_finding += time.perf_counter() - began
            result.pages += 1
            result.examined += len(page)
            if page:
                result.started += await self._start_page(
                    spec, page, payload, request.start_concurrency
                )
                after = page[-1]
            activity.heartbeat({"journey": spec.name, "result": result.model_dump()})
            if len(page) < request.page_size:
                return

    async def _start_page(
        self,
        spec: Any,
        page: list[inactivity_due.Due],
        settings: dict[str, Any],
        concurrency: int,
    ) -> int:
        """Start the page's runs, at most `concurrency` calls at once, then record them in
        `journey_instances` and `inactivity_due` with one statement each. How many new runs
        began."""
        sem = asyncio.Semaphore(max(1, concurrency))

        async def start(member_id: str) -> instances.Started:
            async with sem:
                return await self._start_inactivity_run(spec, member_id, settings)

        outcomes = await asyncio.gather(*(start(d.member_id) for d in page))
        async with self.store.pool.acquire() as conn, conn.transaction():
            new_entries = await instances.mark_started_many(
                conn, spec.name, [o for o in outcomes if o.workflow_id]
            )
            await inactivity_due.mark_started(conn, spec.name, page)
        return new_entries

    async def _start_inactivity_run(
        self, spec: Any, member_id: str, settings: dict[str, Any]
    ) -> instances.Started:
        """Start one run (Temporal's id reuse rule and `USE_EXISTING` keep it to one run per
        member however often this is called). A refused start has an empty workflow id."""
        assert self.client is not None
        workflow_id = spec.workflow_id(member_id)
        try:
            handle = await self.client.start_workflow(
                spec.name,
                JourneyInput(member_id=member_id, settings=settings),
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=spec.id_reuse_policy(),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowAlreadyStartedError:
            return instances.Started("", member_id, None, False)
        # The run's first execution id, whether this call started it or found it running:
        # `mark_started_many` counts an entry only when the id is new to the row.
        entry_id = instances.entry_of(handle)
        return instances.Started(workflow_id, member_id, entry_id, entry_id is not None)
