"""Testing journeys: run them in Temporal's time-skipping test server, with recording fakes
for what they ask of the engine, so a test reads like the brief.

    from journeyman.workflows.testing import JourneyHarness

    async def test_cart_reminder_then_coupon():
        async with JourneyHarness.start([CartRecovery]) as h:
            run = await h.begin(CartRecovery, trigger=("cart.updated", {"cart_id": "c1",
                                                                        "items": [...]}))
            await h.advance(hours(2))
            assert run.templates == ["cart_reminder"]
            await run.send_event("order.placed", {"cart_id": "c1"})
            result = await run.result()
            assert result.reason == "ordered" and result.converted

The fakes stand in for the engine's activities under the same names: `deliver` records the
`SendRequest` and answers `sent` on its first channel (or what `outcome=` decides),
`record_journey_event` records the journey's own events (`journey.entered`,
`journey.converted`, `journey.exited`, ...), `load_profile` answers the profile `profile=`
gives (a blank one by default). Journeys run in the same workflow sandbox as in production,
so a non-deterministic call fails the test at once.

With pytest (and `pytest-asyncio`), the `journey_harness` fixture of the `journeyman` pytest
plugin starts one per test: `h = await journey_harness([CartRecovery])`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from journeyman.engine.contracts import (
    EVENT_SIGNAL,
    JourneyEvent,
    JourneyInput,
    JourneyRecord,
    JourneyResult,
    ProfileRequest,
    SendOutcome,
    SendRequest,
)
from journeyman.engine.contracts.profile import MemberProfile
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

__all__ = [
    "JourneyEvent",
    "JourneyHarness",
    "JourneyResult",
    "JourneyRun",
    "MemberProfile",
    "SendOutcome",
    "SendRequest",
    "member_for",
]

Outcome = Callable[[SendRequest], SendOutcome]
Trigger = JourneyEvent | tuple[str, Mapping[str, Any]] | str | None


def sent(request: SendRequest) -> SendOutcome:
    """The default answer of the `deliver` fake: sent, on the first channel."""
    return SendOutcome(
        status="sent",
        delivery_id=f"d-{request.step}-{uuid.uuid4().hex[:6]}",
        channel=request.channels[0],
    )


def member_for(journey: type, *, holdout: bool = False, variant: str | None = None) -> str:
    """A new member id that the journey assigns to (or keeps out of) its holdout, and to
    `variant` when given (assignment is a hash of journey and member, so it is searched)."""
    spec = journey.__journey__  # type: ignore[attr-defined]
    for i in itertools.count():
        member = f"member-{i}-{uuid.uuid4().hex[:6]}"
        v, h = spec.assign(member)
        if h == holdout and (variant is None or v == variant):
            return member
    raise AssertionError("unreachable")


@dataclass
class JourneyRun:
    """One started journey run: its handle, and what it sent and recorded so far."""

    harness: JourneyHarness
    handle: WorkflowHandle[Any, JourneyResult]
    journey: str
    member_id: str
    key: str | None

    @property
    def sends(self) -> list[SendRequest]:
        """What the run asked to deliver, holdout sends included (`holdout=True`)."""
        return [s for s in self.harness.sends if s.workflow_id == self.handle.id]

    @property
    def templates(self) -> list[str]:
        """Templates actually sent (holdout members' withheld sends are left out)."""
        return [s.template for s in self.sends if not s.holdout]

    @property
    def recorded(self) -> list[str]:
        """Types of the journey's own events, in order (`journey.entered`, ...)."""
        return [r.type for r in self.harness.records if r.workflow_id == self.handle.id]

    async def send_event(self, type: str, data: Mapping[str, Any] | None = None) -> JourneyEvent:
        """Deliver an event to the run, as the dispatcher would."""
        event = self.harness.event(type, data)
        await self.handle.signal(EVENT_SIGNAL, event)
        return event

    async def result(self) -> JourneyResult:
        """Wait for the run to end (time skips while it waits) and return its result."""
        return await self.handle.result()


@dataclass
class JourneyHarness:
    """A time-skipping Temporal test server with a worker running `journeys` against
    recording fakes. Use `JourneyHarness.start(...)` as an async context manager."""

    env: WorkflowEnvironment
    task_queue: str
    profile: Callable[[str], MemberProfile | None]
    outcome: Outcome
    sends: list[SendRequest] = field(default_factory=list)
    records: list[JourneyRecord] = field(default_factory=list)
    _positions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        journeys: Sequence[type],
        *,
        profile: Callable[[str], MemberProfile | None] | None = None,
        outcome: Outcome = sent,
        env: WorkflowEnvironment | None = None,
    ) -> AsyncIterator[JourneyHarness]:
        """Start a test server (or use `env`) and a worker for `journeys`."""
        from journeyman.engine.runtime.stack import temporal_test_server
        from journeyman.engine.runtime.worker import workflow_runner

        async with contextlib.AsyncExitStack() as stack:
            if env is None:
                env = await WorkflowEnvironment.start_time_skipping(
                    test_server_existing_path=temporal_test_server(),
                    data_converter=pydantic_data_converter,
                )
                await stack.enter_async_context(env)
            harness = cls(
                env=env,
                task_queue=f"journeys-{uuid.uuid4().hex[:8]}",
                profile=profile or (lambda member_id: MemberProfile(member_id=member_id)),
                outcome=outcome,
            )
            await stack.enter_async_context(
                Worker(
                    env.client,
                    task_queue=harness.task_queue,
                    workflows=list(journeys),
                    activities=harness._activities(),
                    workflow_runner=workflow_runner(),
                )
            )
            yield harness

    def _activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="deliver")
        async def deliver(request: SendRequest) -> SendOutcome:
            self.sends.append(request)
            return self.outcome(request)

        @activity.defn(name="record_journey_event")
        async def record(record: JourneyRecord) -> int:
            self.records.append(record)
            return next(self._positions)

        @activity.defn(name="load_profile")
        async def load_profile(request: ProfileRequest) -> MemberProfile | None:
            return self.profile(request.member_id)

        return [deliver, record, load_profile]

    def event(self, type: str, data: Mapping[str, Any] | None = None) -> JourneyEvent:
        """An event as the dispatcher hands it to a journey (a fresh store position)."""
        position = next(self._positions)
        return JourneyEvent(
            position=position, type=type, data=dict(data or {}), event_id=f"test-{position}"
        )

    def member(self, journey: type, *, holdout: bool = False, variant: str | None = None) -> str:
        """A new member id in (or out of) the journey's holdout (see `member_for`)."""
        return member_for(journey, holdout=holdout, variant=variant)

    async def begin(
        self,
        journey: type,
        member_id: str | None = None,
        *,
        trigger: Trigger = None,
        settings: Mapping[str, Any] | None = None,
        holdout: bool = False,
    ) -> JourneyRun:
        """Start `journey` for a member (by default one outside the holdout, or inside it
        with `holdout=True`), started by `trigger`: an event, `(type, data)` or a type."""
        spec = journey.__journey__  # type: ignore[attr-defined]
        member = member_id or self.member(journey, holdout=holdout)
        event: JourneyEvent | None
        if isinstance(trigger, str):
            event = self.event(trigger)
        elif isinstance(trigger, tuple):
            event = self.event(trigger[0], trigger[1])
        else:
            event = trigger
        key = spec.key_of(event.data) if event is not None else None
        resolved = spec.resolve_settings(settings).model_dump(mode="json")
        extra: dict[str, Any] = {}
        if event is not None:
            extra = {"start_signal": EVENT_SIGNAL, "start_signal_args": [event]}
        handle = await self.env.client.start_workflow(
            spec.name,
            JourneyInput(member_id=member, key=key, trigger=event, settings=resolved),
            id=spec.workflow_id(member, key),
            task_queue=self.task_queue,
            id_reuse_policy=spec.id_reuse_policy(),
            result_type=JourneyResult,
            **extra,
        )
        return JourneyRun(self, handle, spec.name, member, key)

    async def advance(self, duration: dt.timedelta) -> None:
        """Let `duration` pass on the test server's clock (timers fire on the way)."""
        await self.env.sleep(duration)
