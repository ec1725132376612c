"""Goals and their attribution: the window after the last message, which message a goal
event is credited to, and recording the conversion. Part of `Journey` (a mixin)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from temporalio import workflow

from .spec import Goal

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import (
        JourneyEvent,
        Touch,
    )

if TYPE_CHECKING:
    from journeyman.engine.contracts import JourneyState

    from .spec import JourneySettings, JourneySpec

_GOAL_BY_STORE_ORDER = "journeyman-goal-credit-by-store-order"
"""Goal events are credited by store order and decided once in-flight sends are known."""


class Goals:
    """The goal-watching half of a journey."""

    # Set by `Journey` (the class these methods are part of).
    state: JourneyState
    spec: JourneySpec
    settings: JourneySettings
    member_id: str
    workflow_id: str

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
