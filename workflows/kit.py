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

`Journey` is assembled from one module per job: this one (the run, events, exits, patches),
`_waiting` (`wait_for`, `sleep`), `_sending` (`send`, profiles, the journey's own events)
and `_goals` (the attribution window and conversions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

if TYPE_CHECKING:
    import random

from ._goals import Goals
from ._sending import Sending
from ._waiting import Waiting
from .spec import (
    Exit,
    Goal,
    JourneySettings,
    JourneySpec,
    Reentry,
    Trigger,
)

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import (
        EVENT_SIGNAL,
        JourneyEvent,
        JourneyInput,
        JourneyResult,
        JourneyState,
        SendSummary,
    )
    from journeyman.engine.contracts.profile import MemberProfile

S = TypeVar("S", bound=JourneySettings)
C = TypeVar("C", bound=type)

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


class Journey(Waiting, Sending, Goals):
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


__all__ = ["Journey", "journey"]
