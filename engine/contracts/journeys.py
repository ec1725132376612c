"""Values that cross the line between the engine and journey workflows.

The dispatcher and the scheduler build them, workflows receive them (as workflow input and
signals), and activities take and return them. They are pydantic models so that
`pydantic_data_converter` carries datetimes and durations through Temporal unchanged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from journeyman.engine.contracts.profile import MemberProfile
from pydantic import BaseModel, Field

EVENT_SIGNAL = "journey_event"
"""The signal name the dispatcher uses to hand an event to a running journey."""


class JourneyEvent(BaseModel):
    """One store event as a journey sees it. `position` is the store's global position: a
    journey drops an event whose position it has already seen (delivery is at-least-once)."""

    position: int
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    event_id: str = ""
    stream_id: str = ""
    occurred_at: dt.datetime | None = None


class Touch(BaseModel):
    """A message the journey sent (or, for a holdout member, would have sent)."""

    step: str
    template: str
    at: dt.datetime
    delivery_id: str | None = None
    channel: str | None = None
    withheld: bool = False
    position: int | None = None
    """Store position of the `message.sent` (or `journey.message_withheld`) event."""
    sent_at: dt.datetime | None = None
    """When the provider took the message (the `occurred_at` of `message.sent`); a goal that
    occurred before it is not credited to it. None: `at`."""


class StepRecord(BaseModel):
    """What one kit step did, so that a run continued-as-new replays its finished steps
    instead of repeating them, and resumes an unfinished wait at its absolute deadline."""

    kind: Literal["wait", "send", "profile"]
    done: bool = False
    deadline: dt.datetime | None = None
    event: JourneyEvent | None = None
    outcome: dict[str, Any] | None = None
    profile: MemberProfile | None = None


class JourneyState(BaseModel):
    """Everything a journey carries over continue-as-new."""

    entry_id: str
    entered_at: dt.datetime
    variant: str
    holdout: bool
    profile: MemberProfile | None = None
    seen: list[int] = Field(default_factory=list)
    inbox: list[JourneyEvent] = Field(default_factory=list)
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    step_count: int = 0
    patches: dict[str, bool] = Field(default_factory=dict)
    touches: list[Touch] = Field(default_factory=list)
    converted: bool = False
    conversion_event_id: str | None = None
    trigger_updates: int = 0
    duplicates: int = 0
    runs: int = 1


class JourneyInput(BaseModel):
    """Workflow input: who, which run key, the trigger, the resolved settings, and (after
    continue-as-new) the state to resume from."""

    member_id: str
    key: str | None = None
    trigger: JourneyEvent | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    state: JourneyState | None = None


class SendSummary(BaseModel):
    step: str
    template: str
    status: str
    channel: str | None = None
    delivery_id: str | None = None


class JourneyResult(BaseModel):
    """How a journey run ended (also visible as `journey.exited` in the member's stream)."""

    journey: str
    member_id: str
    status: Literal["completed", "exited"]
    reason: str
    exit_event: str | None = None
    variant: str
    holdout: bool
    converted: bool
    sends: list[SendSummary] = Field(default_factory=list)
    withheld: list[str] = Field(default_factory=list)
    duplicates_dropped: int = 0
    trigger_updates: int = 0
    runs: int = 1


class JourneyRecord(BaseModel):
    """A journey's own event (`journey.entered`, `journey.exited`, `journey.converted`,
    `journey.message_withheld`) for the member's stream. `event_id` is deterministic, so a
    retried activity stores it once."""

    type: str
    event_id: str
    member_id: str
    journey: str
    workflow_id: str
    entry_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class ProfileRequest(BaseModel):
    member_id: str


class ScanRequest(BaseModel):
    """Input of the inactivity scan: which journeys (all inactivity journeys when empty)."""

    journeys: list[str] = Field(default_factory=list)
    page_size: int = 500
    now: dt.datetime | None = None
    start_concurrency: int = Field(
        default=50, description="Workflow starts in flight at once while starting a page."
    )


class SegmentRefreshRequest(BaseModel):
    """Input of `refresh_segments`: segments evaluated as of `now` (the activity's clock when
    None), `page_size` profiles per transaction; of the members whose time-based profile
    fields can have changed, or of every member with `full`."""

    page_size: int = 500
    now: dt.datetime | None = None
    full: bool = False


class SegmentRefreshResult(BaseModel):
    examined: int = 0
    pages: int = 0
    entered: int = 0
    exited: int = 0
    deferred: int = Field(
        default=0, description="Members left for the profile projection to evaluate."
    )
    failed: int = Field(default=0, description="Segment tests that raised.")
    behind: bool = Field(
        default=False,
        description="The profile projection was replaying the store: nothing was evaluated.",
    )


class ScanResult(BaseModel):
    examined: int = Field(default=0, description="Due rows the scan read.")
    started: int = 0
    pages: int = 0
    seconds_finding: float = Field(
        default=0.0, description="Time spent reading due rows, starts excluded."
    )
    busy: list[str] = Field(
        default_factory=list, description="Journeys skipped: another scan was scanning them."
    )
    segments: SegmentRefreshResult | None = Field(
        default=None, description="The segment refresh that ran after the inactivity scan."
    )
