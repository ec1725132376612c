"""What a journey declares: trigger, exits, goal, re-entry, variants, settings.

These are plain values; the `@journey` decorator (in `journeyman.workflows.kit`) attaches a
`JourneySpec` to the class as `__journey__`. The dispatcher and the inactivity scan read
it to route events and start runs; the workflow reads it to decide exits and conversions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import WorkflowIDReusePolicy

DEFAULT_ACTIVITY_TYPES: tuple[str, ...] = (
    "member.registered",
    "page.viewed",
    "app.opened",
    "product.viewed",
    "cart.updated",
    "order.placed",
    "message.clicked",
)
"""Event types that count as member activity unless configured otherwise."""

ANY_ACTIVITY = "*activity*"
"""Stands for every activity event type in `exits=` and `listens=`."""


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


# ---------------------------------------------------------------------------- triggers
@dataclass(frozen=True)
class Trigger:
    kind: Literal["event", "inactivity", "segment"]
    event_type: str | None = None
    key: str | None = None
    days: float | None = None
    segment: str | None = None

    def matches(self, event_type: str, data: Mapping[str, Any]) -> bool:
        if self.kind == "event":
            return event_type == self.event_type
        if self.kind == "segment":
            return event_type == "segment.entered" and data.get("segment") == self.segment
        return False


def on_event(event_type: str, *, key: str | None = None) -> Trigger:
    """Start on `event_type`; with `key`, one run per value of that event property."""
    return Trigger("event", event_type=event_type, key=key)


def inactivity(days: float = 30) -> Trigger:
    """Start for members with no activity for `days` (found by the scheduled scan)."""
    return Trigger("inactivity", days=days)


def segment_entry(segment: str) -> Trigger:
    """Start when the member enters a segment (a `segment.entered` event with that name)."""
    return Trigger("segment", event_type="segment.entered", segment=segment)


# ---------------------------------------------------------------------------- exits, goal
@dataclass(frozen=True)
class Exit:
    """Leave the journey the moment such an event arrives, wherever the journey is waiting.

    `same_key`: only an event whose trigger-key property is absent or equal to this run's
    key (an order for another cart does not end this cart's run). `when`: a further test on
    the event's data.
    """

    event_type: str
    same_key: bool = False
    when: Callable[[Mapping[str, Any]], bool] | None = None
    reason: str | None = None

    def matches(
        self, event_type: str, data: Mapping[str, Any], activity_types: Iterable[str]
    ) -> bool:
        if self.event_type == ANY_ACTIVITY:
            if event_type not in activity_types:
                return False
        elif self.event_type != event_type:
            return False
        return self.when is None or bool(self.when(data))


@dataclass(frozen=True)
class Goal:
    """The conversion event and how long after the last message (or the entry, before any
    message) it still counts."""

    event_type: str
    within: dt.timedelta
    same_key: bool = False
    when: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(frozen=True)
class Reentry:
    mode: Literal["never", "cooldown", "always"] = "never"
    cooldown: dt.timedelta | None = None

    @classmethod
    def never(cls) -> Reentry:
        return cls("never")

    @classmethod
    def always(cls) -> Reentry:
        return cls("always")

    @classmethod
    def after(cls, cooldown: dt.timedelta) -> Reentry:
        return cls("cooldown", cooldown)

    def allows(self, *, entries: int, exited_at: dt.datetime | None, now: dt.datetime) -> bool:
        """May a member who has been in the journey `entries` times enter again now?"""
        if entries <= 0:
            return True
        if self.mode == "always":
            return True
        if self.mode == "never":
            return False
        return exited_at is None or now - exited_at >= (self.cooldown or dt.timedelta(0))


# ---------------------------------------------------------------------------- settings
class JourneySettings(BaseModel):
    """Base of every journey's settings model. Operators override any field through
    configuration (`JOURNEYMAN_JOURNEYS='{"cart_recovery": {"quiet_period": 5}}'`);
    durations accept seconds. A run keeps the settings it started with."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    attribution_window: dt.timedelta | None = Field(
        default=None, description="Overrides the goal's window."
    )
    freshness: dt.timedelta | None = Field(
        default=None,
        description="A trigger event older than this starts nothing (imports, backfills).",
    )
    inactive_days: float = Field(
        default=30, description="Inactivity threshold (inactivity trigger)."
    )
    activity_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ACTIVITY_TYPES))
    channels: list[str] = Field(default_factory=lambda: ["email"])
    history_limit: int = Field(
        default=10_000, description="Continue-as-new once the history is this long."
    )
    deliver_attempts: int = 8
    max_defers: int = 5


# ---------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class JourneySpec:
    name: str
    trigger: Trigger
    exits: tuple[Exit, ...] = ()
    goal: Goal | None = None
    reentry: Reentry = field(default_factory=Reentry.never)
    variants: Mapping[str, float] = field(default_factory=lambda: {"control": 1.0})
    holdout: float = 0.0
    settings: type[JourneySettings] = JourneySettings
    listens: tuple[str, ...] = ()
    freshness: dt.timedelta | None = None
    description: str = ""

    # -- identities
    def workflow_id(self, member_id: str, key: str | None = None) -> str:
        base = f"journey/{self.name}/{member_id}"
        return base if key is None else f"{base}/{key}"

    def key_of(self, data: Mapping[str, Any]) -> str | None:
        if self.trigger.key is None:
            return None
        value = data.get(self.trigger.key)
        return None if value is None else str(value)

    def id_reuse_policy(self) -> WorkflowIDReusePolicy:
        """Temporal's own guard for the re-entry rule (the dispatcher applies it first)."""
        if self.reentry.mode == "never":
            return WorkflowIDReusePolicy.REJECT_DUPLICATE
        return WorkflowIDReusePolicy.ALLOW_DUPLICATE

    # -- routing
    def event_types(self, activity_types: Iterable[str] | None = None) -> frozenset[str]:
        """Every event type this journey listens to (the dispatcher routes nothing else)."""
        acts = tuple(activity_types or DEFAULT_ACTIVITY_TYPES)
        found: set[str] = set()
        if self.trigger.event_type:
            found.add(self.trigger.event_type)
        names = [e.event_type for e in self.exits] + list(self.listens)
        if self.goal is not None:
            names.append(self.goal.event_type)
        for n in names:
            found.update(acts if n == ANY_ACTIVITY else (n,))
        return frozenset(found)

    def is_trigger(self, event_type: str, data: Mapping[str, Any]) -> bool:
        return self.trigger.matches(event_type, data)

    def exit_rule(
        self, event_type: str, data: Mapping[str, Any], activity_types: Iterable[str]
    ) -> Exit | None:
        """The first exit rule this event meets, keys aside (the caller checks `same_key`)."""
        acts = list(activity_types)
        return next((r for r in self.exits if r.matches(event_type, data, acts)), None)

    def starts_on(
        self, event_type: str, data: Mapping[str, Any], activity_types: Iterable[str]
    ) -> bool:
        """Would this event start a run? (A trigger that is also an exit, e.g. an emptied
        cart, starts nothing.)"""
        if not self.is_trigger(event_type, data):
            return False
        if self.trigger.key is not None and self.key_of(data) is None:
            return False
        return self.exit_rule(event_type, data, activity_types) is None

    # -- settings
    def resolve_settings(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        activity_types: Iterable[str] | None = None,
    ) -> JourneySettings:
        values: dict[str, Any] = {}
        if self.freshness is not None:
            values["freshness"] = self.freshness
        if self.trigger.kind == "inactivity" and self.trigger.days is not None:
            values["inactive_days"] = self.trigger.days
        if activity_types is not None:
            values["activity_types"] = list(activity_types)
        values.update(overrides or {})
        return self.settings.model_validate(values)

    # -- variants
    def assign(self, member_id: str) -> tuple[str, bool]:
        """Deterministic (variant, in_holdout) for a member: same member, same answer."""
        holdout = _unit(f"{self.name}:holdout:{member_id}") < self.holdout
        total = sum(self.variants.values())
        point = _unit(f"{self.name}:variant:{member_id}") * total
        acc = 0.0
        chosen = next(iter(self.variants))
        for name, weight in self.variants.items():
            acc += weight
            if point < acc:
                chosen = name
                break
        return chosen, holdout


def _unit(text: str) -> float:
    """A stable number in [0, 1) from text."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
