"""Waiting: `wait_for` an event, `sleep`, and the timers behind them, with exits ending the
journey from inside any wait. Part of `Journey` (a mixin)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import (
        JourneyEvent,
        StepRecord,
    )

if TYPE_CHECKING:
    from journeyman.engine.contracts import JourneyState

    from .spec import JourneySettings, JourneySpec


class Waiting:
    """The waiting half of a journey."""

    # Set by `Journey` (the class these methods are part of).
    state: JourneyState
    spec: JourneySpec
    settings: JourneySettings
    member_id: str
    workflow_id: str

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
