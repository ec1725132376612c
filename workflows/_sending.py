"""Sending and recording: `send` through the `deliver` activity (holdout, defers, fallbacks),
the member's profile, and the journey's own events. Part of `Journey` (a mixin)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import (
        DELIVER,
        JourneyRecord,
        ProfileRequest,
        SendOutcome,
        SendRequest,
        StepRecord,
        Touch,
        delivery_id,
    )
    from journeyman.engine.contracts.profile import MemberProfile

if TYPE_CHECKING:
    from journeyman.engine.contracts import JourneyState

    from .spec import JourneySettings, JourneySpec

_RECORD_RETRY = RetryPolicy(maximum_interval=dt.timedelta(seconds=30))


class Sending:
    """The sending half of a journey."""

    # Set by `Journey` (the class these methods are part of).
    state: JourneyState
    spec: JourneySpec
    settings: JourneySettings
    member_id: str
    workflow_id: str

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
