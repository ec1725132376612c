"""The journey authoring kit: the `@journey` decorator and the `Journey` base class.

A journey is a real `@workflow.defn` class (the decorator applies it, with the journey's
name as the workflow type). The kit hides Temporal's plumbing, never Temporal itself:

* events arrive as the `journey_event` signal; an event whose store position was already
  seen is dropped (the dispatcher delivers at least once);
* an exit event ends the journey the moment it arrives, wherever the body is waiting;
* a goal event inside the attribution window appends `journey.converted`, crediting the
  last message sent before it (last touch) and the variant; a goal that occurred before a
  message was sent (a late-arriving event) is never credited to it, nor one that occurred
  before the journey began;
* variant and holdout are chosen deterministically from the member id; holdout members go
  through every decision but are sent nothing (`journey.message_withheld` records what
  they would have got, so lift can be measured);
* every kit step (`wait_for`, `sleep`, `send`) has a deterministic step key; its result and
  absolute deadline are kept in the journey state, so after continue-as-new the body runs
  again from the top, finished steps return their recorded results, and an unfinished wait
  resumes until its original deadline;
* `self.patched(id)` wraps `workflow.patched` so a change is safe for members already inside,
  including across continue-as-new.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

if TYPE_CHECKING:
    import random

from .spec import (
    Exit,
    Goal,
    JourneySettings,
    JourneySpec,
    Reentry,
    Trigger,
)

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.activities import (
        DELIVER,
        EVENT_SIGNAL,
        JourneyEvent,
        JourneyInput,
        JourneyRecord,
        JourneyResult,
        JourneyState,
        ProfileRequest,
        SendOutcome,
        SendRequest,
        SendSummary,
        StepRecord,
        Touch,
        delivery_id,
    )
    from journeyman.engine.profile_model import MemberProfile

S = TypeVar("S", bound=JourneySettings)
C = TypeVar("C", bound=type)

_RECORD_RETRY = RetryPolicy(maximum_interval=dt.timedelta(seconds=30))


_GOAL_BY_STORE_ORDER = "journeyman-goal-credit-by-store-order"
"""Goal events are credited by store order and decided once in-flight sends are known."""

_GOAL_AFTER_SEND = "journeyman-goal-after-send"
"""A goal is credited to a message only if it occurred after the send, and counts only if it
occurred after the journey began: a late-arriving event cannot convert backwards in time."""


class _Exited(Exception):
    """Unwinds the journey body when an exit event arrives."""

    def __init__(self, reason: str, event: JourneyEvent | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event = event


def journey(
    name: str,
    *,
    trigger: Trigger,
    exits: Sequence[Exit | str] = (),
    goal: Goal | None = None,
    reentry: Reentry | None = None,
    variants: Mapping[str, float] | None = None,
    holdout: float = 0.0,
    settings: type[JourneySettings] = JourneySettings,
    listens: Iterable[str] = (),
    freshness: dt.timedelta | None = None,
    description: str = "",
    versioning_behavior: VersioningBehavior = VersioningBehavior.UNSPECIFIED,
) -> Callable[[C], C]:
    """Declare a journey. The class must subclass `Journey` and define `async def steps()`.

    The class becomes a Temporal workflow named `name`, with a generated `run` method taking
    `JourneyInput` and returning `JourneyResult`.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"journey {name!r}: holdout must be in [0, 1), got {holdout}")
    weights = dict(variants or {"control": 1.0})
    if not weights or any(w <= 0 for w in weights.values()):
        raise ValueError(f"journey {name!r}: variant weights must be positive")
    spec = JourneySpec(
        name=name,
        trigger=trigger,
        exits=tuple(Exit(e) if isinstance(e, str) else e for e in exits),
        goal=goal,
        reentry=reentry or Reentry.never(),
        variants=weights,
        holdout=holdout,
        settings=settings,
        listens=tuple(listens),
        freshness=freshness,
        description=description,
    )

    def apply(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Journey)):
            raise TypeError(f"@journey({name!r}) must decorate a subclass of Journey")
        if cls.steps is Journey.steps:
            raise TypeError(f"journey {name!r} ({cls.__qualname__}) must define `async def steps`")
        cls.__journey__ = spec

        async def run(self: Journey, input: JourneyInput) -> JourneyResult:
            return await self._journey_run(input)

        run.__module__ = cls.__module__
        run.__name__ = "run"
        run.__qualname__ = f"{cls.__name__}.run"
        run.__annotations__ = {"input": JourneyInput, "return": JourneyResult}
        cls.run = workflow.run(run)  # type: ignore[attr-defined]
        return workflow.defn(name=name, versioning_behavior=versioning_behavior)(cls)

    return apply


def not_deterministic(journey: str, exc: BaseException) -> ApplicationError:
    """The journey's run fails at once, naming what to use instead. Left alone, the sandbox's
    error fails only the workflow task, which Temporal retries forever, and its advice (pass
    the import through) is wrong for a journey."""
    what = getattr(exc, "qualified_name", None) or str(exc)
    if any(word in what for word in ("random", "uuid", "urandom", "secrets")):
        instead = "self.random() (a generator seeded by the run)"
    else:
        instead = "self.now() for the current time"
    return ApplicationError(
        f"journey {journey!r} called {what} in its steps; a journey is replayed from its "
        f"history and must give the same result every time: use {instead}",
        type="JourneyNotDeterministic",
        non_retryable=True,
    )


class Journey:
    """Base class of journeys. Subclasses write `async def steps(self)` with the kit's
    helpers: `wait_for`, `sleep`, `send`, `patched`, and read `self.profile`,
    `self.variant`, `self.holdout`, `self.settings`, `self.trigger`, `self.key`."""

    __journey__: ClassVar[JourneySpec]

    def __init__(self) -> None:
        self._early: list[JourneyEvent] = []
        self._ready = False
        self._exit: _Exited | None = None
        self._pending_goal: JourneyEvent | None = None
        # A goal that arrived while a send was in flight, outside the window as far as the
        # messages recorded then go: decided once the send's outcome is known.
        self._pending_unchecked = False
        self._sending = False
        self._goal_after_send = False
        self._counter = 0
        self._finished = False

    # ------------------------------------------------------------------ what the body sees
    async def steps(self) -> None:
        raise NotImplementedError

    @property
    def spec(self) -> JourneySpec:
        return type(self).__journey__

    @property
    def profile(self) -> MemberProfile | None:
        """The member's profile when the journey began (or at the last `refresh_profile`)."""
        return self.state.profile

    @property
    def variant(self) -> str:
        return self.state.variant

    @property
    def holdout(self) -> bool:
        return self.state.holdout

    @property
    def entered_at(self) -> dt.datetime:
        return self.state.entered_at

    def now(self) -> dt.datetime:
        """The current time, as the journey must read it: the same on every replay."""
        return workflow.now()

    def random(self) -> random.Random:
        """A random generator seeded by the run, the same on every replay."""
        return workflow.random()

    # ------------------------------------------------------------------ signals and queries
    @workflow.signal(name=EVENT_SIGNAL)
    def _receive(self, event: JourneyEvent) -> None:
        if not self._ready:
            self._early.append(event)
        else:
            self._ingest(event)

    @workflow.query(name="journey_status")
    def _status(self) -> dict[str, Any]:
        if not self._ready:
            return {"ready": False}
        return {
            "ready": True,
            "variant": self.state.variant,
            "holdout": self.state.holdout,
            "converted": self.state.converted,
            "steps": list(self.state.steps),
            "duplicates": self.state.duplicates,
            "exit": None if self._exit is None else self._exit.reason,
        }

    def _ingest(self, event: JourneyEvent) -> None:
        state = self.state
        if event.position in self._seen:
            state.duplicates += 1
            return
        self._seen.add(event.position)
        state.seen.append(event.position)
        if len(state.seen) > 2000:
            drop = state.seen[:-1000]
            del state.seen[:-1000]
            self._seen.difference_update(drop)
        if self._finished:
            return
        goal = self.spec.goal
        if (
            goal is not None
            and not state.converted
            and self._pending_goal is None
            and event.type == goal.event_type
            and (not goal.same_key or self._same_key(event))
            and (goal.when is None or goal.when(event.data))
        ):
            inside = (
                self._credited_by_time(event)[1]
                if self._goal_after_send
                else self._inside_window(event)
            )
            if inside or self._sending:
                self._pending_goal = event
                self._pending_unchecked = not inside
        if self._exit is None:
            reason = self._exit_reason(event)
            if reason is not None:
                self._exit = _Exited(reason, event)
                return
        if self.spec.is_trigger(event.type, event.data) and self._same_key(event):
            self.trigger = event
            state.trigger_updates += 1
        state.inbox.append(event)

    def _same_key(self, event: JourneyEvent) -> bool:
        if self.key is None or self.spec.trigger.key is None:
            return True
        value = event.data.get(self.spec.trigger.key)
        return value is None or str(value) == self.key

    def _exit_reason(self, event: JourneyEvent) -> str | None:
        acts = self.settings.activity_types
        for rule in self.spec.exits:
            if rule.same_key and not self._same_key(event):
                continue
            if rule.matches(event.type, event.data, acts):
                return rule.reason or event.type
        return None

    def _event_time(self, event: JourneyEvent) -> dt.datetime:
        now = workflow.now()
        return now if event.occurred_at is None else min(event.occurred_at, now)

    def _window(self) -> tuple[dt.datetime, dt.datetime] | None:
        goal = self.spec.goal
        if goal is None:
            return None
        start = self.state.touches[-1].at if self.state.touches else self.state.entered_at
        return start, start + self._attribution_window(goal)

    def _attribution_window(self, goal: Goal) -> dt.timedelta:
        return self.settings.attribution_window or goal.within

    def _inside_window(self, event: JourneyEvent) -> bool:
        window = self._window()
        return window is not None and self._event_time(event) <= window[1]

    # ------------------------------------------------------------------ the run
    async def _journey_run(self, input: JourneyInput) -> JourneyResult:
        info = workflow.info()
        spec = self.spec
        self.input = input
        self.member_id = input.member_id
        self.key = input.key
        self.trigger: JourneyEvent | None = input.trigger
        self.settings = spec.settings.model_validate(input.settings)
        self.workflow_id = info.workflow_id
        if input.state is None:
            variant, holdout = spec.assign(input.member_id)
            self.state = JourneyState(
                entry_id=info.first_execution_run_id,
                entered_at=workflow.now(),
                variant=variant,
                holdout=holdout,
            )
            if input.trigger is not None:
                self.state.seen.append(input.trigger.position)
                reason = self._exit_reason(input.trigger)
                if reason is not None:  # e.g. a cart that was emptied: nothing to do
                    self._exit = _Exited(reason, input.trigger)
            await self._record(
                "journey.entered",
                {
                    "key": input.key,
                    "variant": variant,
                    "holdout": holdout,
                    "trigger": None if input.trigger is None else input.trigger.event_id,
                    "trigger_position": None if input.trigger is None else input.trigger.position,
                },
            )
            self.state.profile = await self._load_profile()
        else:
            self.state = input.state
            self.state.runs += 1
        # Decided once per journey, before any event is looked at (see _GOAL_AFTER_SEND).
        self._goal_after_send = self.patched(_GOAL_AFTER_SEND)
        self._seen = set(self.state.seen)
        self._ready = True
        for early in self._early:
            self._ingest(early)
        self._early.clear()

        status: Literal["completed", "exited"] = "completed"
        reason = "completed"
        exit_event: JourneyEvent | None = None
        try:
            await self._settle()
            await self.steps()
            await self._settle()
        except _Exited as exited:
            status, reason, exit_event = "exited", exited.reason, exited.event
        except workflow.NondeterminismError as exc:
            raise not_deterministic(spec.name, exc) from None
        await self._watch_goal(after_exit=status == "exited")
        self._finished = True
        if self._pending_goal is not None:
            await self._record_conversion(self._pending_goal)
        await self._record(
            "journey.exited",
            {
                "reason": reason,
                "status": status,
                "exit_event": None if exit_event is None else exit_event.type,
                "exit_event_id": None if exit_event is None else exit_event.event_id,
                "converted": self.state.converted,
                "variant": self.state.variant,
                "holdout": self.state.holdout,
            },
        )
        return JourneyResult(
            journey=spec.name,
            member_id=self.member_id,
            status=status,
            reason=reason,
            exit_event=None if exit_event is None else exit_event.type,
            variant=self.state.variant,
            holdout=self.state.holdout,
            converted=self.state.converted,
            sends=[
                SendSummary(
                    step=k,
                    template=(r.outcome or {}).get("template", ""),
                    status=(r.outcome or {}).get("status", ""),
                    channel=(r.outcome or {}).get("channel"),
                    delivery_id=(r.outcome or {}).get("delivery_id"),
                )
                for k, r in self.state.steps.items()
                if r.kind == "send" and r.done and (r.outcome or {}).get("reason") != "holdout"
            ],
            withheld=[t.template for t in self.state.touches if t.withheld],
            duplicates_dropped=self.state.duplicates,
            trigger_updates=self.state.trigger_updates,
            runs=self.state.runs,
        )

    async def _watch_goal(self, *, after_exit: bool) -> None:
        """Keep listening for the goal until the attribution window closes.

        After an exit the window stays open only if a message was sent (or withheld)."""
        window = self._window()
        if window is None or self.state.converted or self._pending_goal is not None:
            return
        if after_exit and not self.state.touches:
            return
        while not self.state.converted and self._pending_goal is None:
            left = window[1] - workflow.now()
            if left <= dt.timedelta(0):
                return
            try:
                await workflow.wait_condition(lambda: self._pending_goal is not None, timeout=left)
            except TimeoutError:
                return

    async def _settle(self) -> None:
        """Record a pending conversion; raise if an exit arrived."""
        if self._pending_goal is not None:
            event, self._pending_goal = self._pending_goal, None
            await self._record_conversion(event)
        if self._exit is not None:
            raise self._exit

    # ------------------------------------------------------------------ steps
    def _step_key(self, name: str, step: str | None) -> str:
        self._counter += 1
        self.state.step_count = max(self.state.step_count, self._counter)
        return f"{self._counter}:{step or name}"

    def patched(self, patch_id: str) -> bool:
        """`workflow.patched` that stays consistent across continue-as-new: steps replayed
        from the journey state take the branch they took when they first ran."""
        if patch_id in self.state.patches:
            return self.state.patches[patch_id]
        value = False if self._counter < self.state.step_count else workflow.patched(patch_id)
        self.state.patches[patch_id] = value
        return value

    def deprecate_patch(self, patch_id: str) -> None:
        workflow.deprecate_patch(patch_id)

    async def wait_for(
        self,
        *event_types: str,
        timeout: dt.timedelta | None = None,
        until: dt.datetime | None = None,
        where: Callable[[JourneyEvent], bool] | None = None,
        step: str | None = None,
    ) -> JourneyEvent | None:
        """Wait until one of `event_types` arrives (returned) or the deadline passes (None).

        An event that arrived since the previous wait ended counts. An exit event ends the
        journey from inside the wait."""
        if not event_types:
            raise ValueError("wait_for needs at least one event type; use sleep() to wait")
        key = self._step_key("wait:" + ",".join(event_types), step)
        types = set(event_types)

        def match(e: JourneyEvent) -> bool:
            return e.type in types and (where is None or where(e))

        return await self._wait(key, timeout, until, match)

    async def sleep(
        self,
        duration: dt.timedelta | None = None,
        *,
        until: dt.datetime | None = None,
        step: str | None = None,
    ) -> None:
        """Wait for time to pass (exits still end the journey at once)."""
        key = self._step_key("sleep", step)
        await self._wait(key, duration, until, None)

    async def _wait(
        self,
        key: str,
        timeout: dt.timedelta | None,
        until: dt.datetime | None,
        match: Callable[[JourneyEvent], bool] | None,
    ) -> JourneyEvent | None:
        record = self.state.steps.get(key)
        if record is not None and record.done:
            return record.event
        if record is None:
            deadline = until
            if timeout is not None:
                by_timeout = workflow.now() + timeout
                deadline = by_timeout if deadline is None else min(deadline, by_timeout)
            record = StepRecord(kind="wait", deadline=deadline)
            self.state.steps[key] = record
        found = await self._wait_until(record.deadline, match)
        record.done = True
        record.event = found
        # Events that arrived before this wait ended have had their chance.
        self.state.inbox.clear()
        return found

    def _take(self, match: Callable[[JourneyEvent], bool] | None) -> JourneyEvent | None:
        if match is None:
            return None
        for i, event in enumerate(self.state.inbox):
            if match(event):
                return self.state.inbox.pop(i)
        return None

    async def _wait_until(
        self, deadline: dt.datetime | None, match: Callable[[JourneyEvent], bool] | None
    ) -> JourneyEvent | None:
        while True:
            await self._settle()
            found = self._take(match)
            if found is not None:
                return found
            left = None if deadline is None else deadline - workflow.now()
            if left is not None and left <= dt.timedelta(0):
                return None
            self._maybe_continue_as_new()

            def wake() -> bool:
                if self._exit is not None or self._pending_goal is not None:
                    return True
                return match is not None and any(match(e) for e in self.state.inbox)

            try:
                await workflow.wait_condition(wake, timeout=left)
            except TimeoutError:
                await self._settle()
                return self._take(match)

    def _maybe_continue_as_new(self) -> None:
        info = workflow.info()
        if (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.settings.history_limit
        ):
            workflow.continue_as_new(
                JourneyInput(
                    member_id=self.member_id,
                    key=self.key,
                    trigger=self.trigger,
                    settings=self.input.settings,
                    state=self.state,
                )
            )

    async def send(
        self,
        channels: str | Sequence[str] | None,
        template: str,
        *,
        step: str | None = None,
        purpose: Literal["marketing", "transactional"] = "marketing",
        **context: Any,
    ) -> SendOutcome:
        """Send `template` through the first channel that can take it (`channels` in fallback
        order; None means the journey settings' `channels`). Holdout members are sent
        nothing. A `deferred` outcome sleeps until its `defer_until` and sends again."""
        chosen = (
            [channels] if isinstance(channels, str) else list(channels or self.settings.channels)
        )
        key = self._step_key(f"send:{template}", step)
        record = self.state.steps.get(key)
        if record is not None and record.done and record.outcome is not None:
            return SendOutcome.model_validate(record.outcome)
        await self._settle()
        if record is None:
            record = StepRecord(kind="send")
            self.state.steps[key] = record
        request = SendRequest(
            journey=self.spec.name,
            member_id=self.member_id,
            workflow_id=self.workflow_id,
            entry_id=self.state.entry_id,
            step=key,
            channels=chosen,
            template=template,
            context=context,
            purpose=purpose,
            variant=self.state.variant,
            holdout=self.state.holdout,
        )
        self._sending = True
        try:
            if self.state.holdout:
                outcome = SendOutcome(
                    status="suppressed", delivery_id=delivery_id(request), reason="holdout"
                )
                position = await self._record(
                    "journey.message_withheld",
                    {
                        "step": key,
                        "template": template,
                        "channels": chosen,
                        "variant": self.variant,
                    },
                    suffix=key,
                )
                self.state.touches.append(
                    Touch(
                        step=key,
                        template=template,
                        at=workflow.now(),
                        withheld=True,
                        position=position,
                    )
                )
            else:
                outcome = await self._deliver(request, record)
                if outcome.status == "sent":
                    self.state.touches.append(
                        Touch(
                            step=key,
                            template=template,
                            at=workflow.now(),
                            delivery_id=outcome.delivery_id,
                            channel=outcome.channel,
                            position=outcome.position,
                            sent_at=outcome.sent_at,
                        )
                    )
        finally:
            self._sending = False
        record.done = True
        record.outcome = {**outcome.model_dump(mode="json"), "template": template}
        await self._settle()
        return outcome

    async def _deliver(self, request: SendRequest, record: StepRecord) -> SendOutcome:
        defers = 0
        # A `routed` outcome sends the same request to a channel's own task queue, where
        # Temporal enforces the channel's rate limit (None: this workflow's queue).
        queue: str | None = None
        hops = 0
        while True:
            if record.deadline is not None:
                await self._wait_until(record.deadline, None)
                record.deadline = None
            try:
                outcome = await workflow.execute_activity(
                    DELIVER,
                    request,
                    task_queue=queue,
                    result_type=SendOutcome,
                    start_to_close_timeout=dt.timedelta(seconds=60),
                    # `deliver` heartbeats while it runs: a send lost with its worker is
                    # retried (safely, through its claim) within seconds.
                    heartbeat_timeout=dt.timedelta(seconds=10),
                    retry_policy=RetryPolicy(
                        maximum_attempts=self.settings.deliver_attempts,
                        maximum_interval=dt.timedelta(minutes=5),
                    ),
                )
            except ActivityError as err:
                return SendOutcome(
                    status="failed",
                    delivery_id=delivery_id(request),
                    reason=f"deliver failed: {err.cause or err}",
                )
            if outcome.status == "routed" and outcome.task_queue:
                hops += 1
                if hops <= 2 * len(request.channels) + 2:
                    queue = outcome.task_queue
                    continue
                return SendOutcome(
                    status="failed", delivery_id=outcome.delivery_id, reason="routing loop"
                )
            queue = None
            if outcome.status != "deferred" or outcome.defer_until is None:
                return outcome
            defers += 1
            if defers > self.settings.max_defers:
                return outcome
            record.deadline = outcome.defer_until

    async def refresh_profile(self, *, step: str | None = None) -> MemberProfile | None:
        """Load the member's profile again (a recorded step: replays return the same)."""
        key = self._step_key("profile", step)
        record = self.state.steps.get(key)
        if record is not None and record.done:
            return record.profile
        profile = await self._load_profile()
        self.state.steps[key] = StepRecord(kind="profile", done=True, profile=profile)
        self.state.profile = profile
        return profile

    # ------------------------------------------------------------------ activities
    async def _load_profile(self) -> MemberProfile | None:
        return await workflow.execute_activity(
            "load_profile",
            ProfileRequest(member_id=self.member_id),
            result_type=MemberProfile | None,  # type: ignore[arg-type]
            start_to_close_timeout=dt.timedelta(seconds=30),
            retry_policy=_RECORD_RETRY,
        )

    async def _record(self, event_type: str, data: dict[str, Any], *, suffix: str = "") -> int:
        """Append a journey event to the member's stream; returns its store position."""
        event_id = f"{event_type}/{self.workflow_id}/{self.state.entry_id}"
        if suffix:
            event_id += f"/{suffix}"
        return await workflow.execute_activity(
            "record_journey_event",
            JourneyRecord(
                type=event_type,
                event_id=event_id,
                member_id=self.member_id,
                journey=self.spec.name,
                workflow_id=self.workflow_id,
                entry_id=self.state.entry_id,
                data=data,
            ),
            result_type=int,
            start_to_close_timeout=dt.timedelta(seconds=30),
            retry_policy=_RECORD_RETRY,
        )

    def _credited(self, event: JourneyEvent) -> tuple[Touch | None, bool]:
        """The message a goal event is credited to (the last one recorded before it in the
        store; by time for messages without a position) and whether the event falls inside
        the attribution window after it (after entry when no message came before it)."""
        at = self._event_time(event)
        touch = next(
            (
                t
                for t in reversed(self.state.touches)
                if (t.position < event.position if t.position is not None else t.at <= at)
            ),
            None,
        )
        goal = self.spec.goal
        if goal is None:
            return touch, False
        start = self.state.entered_at if touch is None else touch.at
        return touch, at <= start + self._attribution_window(goal)

    def _credited_by_time(self, event: JourneyEvent) -> tuple[Touch | None, bool]:
        """`_credited`, and the goal must have occurred after the message was sent (after the
        journey began when no message came before it), for treatment and holdout alike.

        The message is the last one recorded before the goal in the store and sent before
        it occurred; a late-arriving goal that occurred before a message is credited to the
        one before that, or to no message."""
        at = self._event_time(event)
        touch = next(
            (
                t
                for t in reversed(self.state.touches)
                if (t.position < event.position if t.position is not None else t.at <= at)
                and (t.sent_at or t.at) <= at
            ),
            None,
        )
        goal = self.spec.goal
        if goal is None:
            return touch, False
        if touch is None:
            began = self.state.entered_at
            trigger = self.input.trigger
            if trigger is not None:
                began = min(began, self._event_time(trigger))
            return None, began <= at <= self.state.entered_at + self._attribution_window(goal)
        return touch, at <= touch.at + self._attribution_window(goal)

    async def _record_conversion(self, event: JourneyEvent) -> None:
        unchecked, self._pending_unchecked = self._pending_unchecked, False
        if self.state.converted:
            return
        at = self._event_time(event)
        if self._goal_after_send:
            touch, inside = self._credited_by_time(event)
            if not inside:
                return
        elif self.patched(_GOAL_BY_STORE_ORDER):
            touch, inside = self._credited(event)
            if not inside:
                return
        else:
            if unchecked:
                return
            touch = next((t for t in reversed(self.state.touches) if t.at <= at), None)
        self.state.converted = True
        self.state.conversion_event_id = event.event_id
        await self._record(
            "journey.converted",
            {
                "goal": event.type,
                "goal_event_id": event.event_id,
                "goal_position": event.position,
                "at": at.isoformat(),
                "variant": self.state.variant,
                "holdout": self.state.holdout,
                "delivery_id": None if touch is None else touch.delivery_id,
                "step": None if touch is None else touch.step,
                "template": None if touch is None else touch.template,
                "channel": None if touch is None else touch.channel,
                "withheld": None if touch is None else touch.withheld,
                "value": event.data.get("total") or event.data.get("value"),
            },
        )


__all__ = ["Journey", "journey"]
