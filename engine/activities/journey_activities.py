"""Activities the journey kit and the inactivity scan call. Journeys reach side effects only
through these. The scan also runs `refresh_segments`, which re-evaluates every member's
segments for tests that change with time alone.

`JourneyActivities(store, ...)` holds the connections; `.all()` lists the activity callables
for a worker. Tests register the same object against their own database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine import metrics
from engine.profile_model import MemberProfile
from engine.segments.membership import RefreshResult, Segments, refresh, segment_list
from engine.settings import Settings, get_settings
from event_store import NewEvent, PostgresEventStore

from . import instances
from .delivery_contract import DELIVER, SendOutcome, SendRequest
from .heartbeat import with_heartbeats
from .models import (
    JourneyInput,
    JourneyRecord,
    ProfileRequest,
    ScanRequest,
    ScanResult,
    SegmentRefreshRequest,
    SegmentRefreshResult,
)
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
            from engine.profiles import get_profile
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
        """Page through the profile projection for members who are due for each inactivity
        journey and start their runs. The cursor is heartbeated: a retried attempt resumes
        where the last one stopped."""
        if self.client is None:
            raise RuntimeError("scan_inactive_members needs a Temporal client")
        now = request.now or dt.datetime.now(dt.UTC)
        details = activity.info().heartbeat_details
        resume: dict[str, Any] = dict(details[0]) if details else {}
        result = ScanResult(**resume.get("result", {}))
        names = request.journeys or [
            n for n, c in self.journeys.items() if c.__journey__.trigger.kind == "inactivity"
        ]
        done: list[str] = list(resume.get("done", []))
        for name in names:
            if name in done:
                continue
            cls = self.journeys[name]
            spec = cls.__journey__
            settings = spec.resolve_settings(
                self.journey_settings.get(name), activity_types=self.activity_types
            )
            if not settings.enabled:
                done.append(name)
                continue
            cutoff = now - dt.timedelta(days=settings.inactive_days)
            cooldown_cutoff = now - (spec.reentry.cooldown or dt.timedelta(0))
            prefix = spec.workflow_id("")
            cursor = resume.get("cursor") if resume.get("journey") == name else None
            while True:
                rows = await self._due_page(
                    spec, prefix, cutoff, cooldown_cutoff, cursor, request.page_size
                )
                result.pages += 1
                result.examined += len(rows)
                if not rows:
                    break
                started = await self._start_many(
                    spec, [r["member_id"] for r in rows], settings.model_dump(mode="json")
                )
                result.started += sum(started)
                last = rows[-1]
                cursor = [last["last_activity_at"].isoformat(), last["member_id"]]
                activity.heartbeat(
                    {"journey": name, "cursor": cursor, "done": done, "result": result.model_dump()}
                )
                if len(rows) < request.page_size:
                    break
            done.append(name)
        return result

    @activity.defn(name="refresh_segments")
    async def refresh_segments(self, request: SegmentRefreshRequest) -> SegmentRefreshResult:
        """Evaluate every member's segments as of `request.now` (see
        `engine.segments.membership.refresh`). The cursor is heartbeated after each page: a
        retried attempt resumes where the last one stopped."""
        if self._segments is None:
            from engine.segments import registered_segments

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

    async def _due_page(
        self,
        spec: Any,
        prefix: str,
        cutoff: dt.datetime,
        cooldown_cutoff: dt.datetime,
        cursor: list[str] | None,
        limit: int,
    ) -> list[Any]:
        args: list[Any] = [cutoff, spec.name, prefix, cooldown_cutoff, spec.reentry.mode, limit]
        after = ""
        if cursor is not None:
            args += [dt.datetime.fromisoformat(cursor[0]), cursor[1]]
            after = "AND (p.last_activity_at, p.member_id) > ($7, $8)"
        return await self.store.pool.fetch(
            f"""
            SELECT p.member_id, p.last_activity_at
            FROM member_profiles p
            LEFT JOIN journey_instances j
                   ON j.journey = $2 AND j.workflow_id = $3 || p.member_id
            WHERE p.last_activity_at < $1 AND NOT p.erased AND p.merged_into IS NULL {after}
              AND (j.workflow_id IS NULL OR (
                    NOT j.running
                    AND $5 <> 'never'
                    AND ($5 = 'always' OR j.exited_at IS NULL OR j.exited_at < $4)))
            ORDER BY p.last_activity_at, p.member_id
            LIMIT $6
            """,
            *args,
        )

    async def _start_many(
        self, spec: Any, member_ids: list[str], settings: dict[str, Any]
    ) -> list[bool]:
        sem = asyncio.Semaphore(16)

        async def start(member_id: str) -> bool:
            async with sem:
                return await self._start_inactivity_run(spec, member_id, settings)

        return await asyncio.gather(*(start(m) for m in member_ids))

    async def _start_inactivity_run(
        self, spec: Any, member_id: str, settings: dict[str, Any]
    ) -> bool:
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
            return False
        entry_id = instances.entry_of(handle)
        _, new_run = await instances.mark_started(
            self.store.pool,
            workflow_id=workflow_id,
            journey=spec.name,
            member_id=member_id,
            key=None,
            entry_id=entry_id,
            new_run=entry_id is not None,
        )
        return new_run
