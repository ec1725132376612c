"""Folding events into a member profile: pure functions, no database.

`apply` folds one event into a `ProfileRow`; `scores` derives the RFM scores and the
lifecycle stage from a row at a given time. The projector stores both, and `get_profile`
recomputes the time-dependent part when it reads, so a profile never shows a stage that
has gone stale.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zoneinfo
from dataclasses import dataclass, field, fields
from functools import lru_cache
from operator import attrgetter
from typing import Any

from journeyman.engine.core.settings import Settings
from journeyman.event_store import RecordedEvent

# Types the engine appends about a member; they do not make the member "seen".
_NOT_SEEN = frozenset(
    {
        "member.merged",
        "member.erased",
        "journey.entered",
        "journey.exited",
        "journey.converted",
        "message.sent",
        "message.delivered",
        "message.failed",
        "message.bounced",
        "message.suppressed",
        "segment.entered",
        "segment.exited",
    }
)
_AMOUNT_KEYS = ("total", "revenue", "value", "amount")
_PROFILE_EVENTS = frozenset({"member.registered", "member.identified", "member.updated"})
READS_DATA = frozenset(
    {
        "order.placed",
        "order.refunded",
        "member.consent_changed",
        "member.unsubscribed",
        "message.bounced",
        "message.complained",
        *_PROFILE_EVENTS,
        "member.grouped",
        "member.merged",
    }
)
"""The event types whose data `apply` (or the projector, for merges) reads. Every other
event folds from its type, time, position and metadata alone, so the projector need not open
its sealed properties (decrypting them is most of what a batch would otherwise cost)."""
_FOLDED = READS_DATA | {"member.erased"}
"""The event types `apply` does more with than count, time and activity."""
_JSONB = ("consent", "suppressed", "traits")


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value) if value else "{}"


@dataclass(slots=True)
class ProfileRow:
    """One `member_profiles` row."""

    member_id: str
    first_seen_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    order_count: int = 0
    monetary_value: float = 0.0
    recency_score: int | None = None
    frequency_score: int | None = None
    monetary_score: int | None = None
    lifecycle_stage: str = "new"
    consent: dict[str, bool] = field(default_factory=dict)
    timezone: str | None = None
    locale: str | None = None
    suppressed: dict[str, str] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    erased: bool = False
    merged_into: str | None = None
    event_count: int = 0
    last_position: int = 0

    @classmethod
    def from_record(cls, record: Any) -> ProfileRow:
        """A row from a `member_profiles` record (jsonb columns decoded or as text)."""
        values = {k: record[k] for k in COLUMNS if k in record}
        for name in _JSONB:
            if isinstance(values.get(name), str):
                values[name] = json.loads(values[name])
        return cls(**values)

    def to_record(self) -> list[Any]:
        """The row's values in `COLUMNS` order, its jsonb columns as JSON text (what the
        projector's batched upsert takes: one array per column). Raises ValueError for a
        monetary value that is not finite: no reader of the profile could carry it in JSON."""
        if not math.isfinite(self.monetary_value):
            raise ValueError(
                f"member {self.member_id}: the monetary value {self.monetary_value} is not finite"
            )
        values = list(_values(self))
        for i in _JSONB_AT:
            values[i] = _json_text(values[i])
        return values


COLUMNS = tuple(f.name for f in fields(ProfileRow))
_values = attrgetter(*COLUMNS)
_JSONB_AT = tuple(COLUMNS.index(name) for name in _JSONB)


def _max(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b > a else a


def _min(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    return b if a is None or b < a else a


def _amount(data: dict[str, Any]) -> float:
    for key in _AMOUNT_KEYS:
        v = data.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return 0.0


@lru_cache(maxsize=1024)
def valid_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
        return True
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False


def _channel(data: dict[str, Any], default: str | None = "email") -> str | None:
    v = data.get("channel", default)
    return v if isinstance(v, str) and 0 < len(v) <= 40 else None


LIFTABLE = "stop"
"""The one suppression a member can lift (an SMS START); a bounce or a complaint stays."""


def suppress(suppressed: dict[str, str], channel: str, reason: str) -> None:
    """Suppress `channel` for `reason`. A STOP does not replace a bounce or a complaint
    already there: START lifts only a STOP, so the lasting reason must be the one kept."""
    if reason == LIFTABLE and suppressed.get(channel, LIFTABLE) != LIFTABLE:
        return
    suppressed[channel] = reason


def apply(row: ProfileRow, event: RecordedEvent, activity_types: frozenset[str]) -> None:
    """Fold one event into `row` (in place)."""
    t, at = event.type, event.occurred_at
    row.event_count += 1
    if event.global_position > row.last_position:
        row.last_position = event.global_position
    if t not in _NOT_SEEN and event.metadata.get("source") != "identity":
        if row.first_seen_at is None or at < row.first_seen_at:
            row.first_seen_at = at
        if row.last_seen_at is None or at > row.last_seen_at:
            row.last_seen_at = at
    if t in activity_types and (row.last_activity_at is None or at > row.last_activity_at):
        row.last_activity_at = at
    if t not in _FOLDED:
        return
    data = event.data
    if t == "order.placed":
        row.order_count += 1
        row.monetary_value = round(row.monetary_value + _amount(data), 6)
        row.last_order_at = _max(row.last_order_at, at)
    elif t == "order.refunded":
        row.monetary_value = round(max(0.0, row.monetary_value - _amount(data)), 6)
    elif t == "member.consent_changed":
        channel = _channel(data, None)
        purpose = data.get("purpose", "marketing")
        granted = data.get("granted")
        if channel and isinstance(purpose, str) and isinstance(granted, bool):
            row.consent[f"{channel}:{purpose}"] = granted
            # Only the member's own START (from the handset) lifts a carrier-level STOP.
            if (
                granted
                and data.get("reason") == "start"
                and row.suppressed.get(channel) == LIFTABLE
            ):
                del row.suppressed[channel]
    elif t == "member.unsubscribed":
        channel = _channel(data)
        purpose = data.get("purpose", "marketing")
        if channel and isinstance(purpose, str):
            row.consent[f"{channel}:{purpose}"] = False
            if data.get("reason") == "stop":
                suppress(row.suppressed, channel, "stop")
    elif t == "message.bounced":
        channel = _channel(data)
        if channel and data.get("bounce_type", "hard") == "hard":
            suppress(row.suppressed, channel, "bounce")
    elif t == "message.complained":
        channel = _channel(data)
        if channel:
            suppress(row.suppressed, channel, "complaint")
    elif t in _PROFILE_EVENTS:
        _apply_traits(row, data)
    elif t == "member.grouped":
        # Segment's group call: the member belongs to a group (account) with these traits.
        group, traits = data.get("group_id"), data.get("traits")
        if isinstance(group, str) and group:
            groups = row.traits.get("groups")
            groups = dict(groups) if isinstance(groups, dict) else {}
            groups[group] = traits if isinstance(traits, dict) else {}
            row.traits["groups"] = groups
    elif t == "member.erased":
        row.erased = True
        row.timezone = row.locale = None
        row.traits = {}
        row.consent = {}


def _apply_traits(row: ProfileRow, data: dict[str, Any]) -> None:
    tz = data.get("timezone")
    if isinstance(tz, str) and valid_timezone(tz):
        row.timezone = tz
    locale = data.get("locale")
    if isinstance(locale, str) and 0 < len(locale) <= 35:
        row.locale = locale
    consent = data.get("consent")
    if isinstance(consent, dict):
        for key, granted in consent.items():
            if isinstance(granted, bool) and ":" in key:
                row.consent[key] = granted
    traits = data.get("traits")
    if isinstance(traits, dict):
        row.traits.update(traits)


def combine(survivor: ProfileRow, merged: ProfileRow) -> None:
    """Fold a merged member's profile into the survivor's (survivor's choices win)."""
    for name in ("first_seen_at",):
        v = getattr(merged, name)
        if v is not None:
            setattr(survivor, name, _min(getattr(survivor, name), v))
    for name in ("last_seen_at", "last_activity_at", "last_order_at"):
        v = getattr(merged, name)
        if v is not None:
            setattr(survivor, name, _max(getattr(survivor, name), v))
    survivor.order_count += merged.order_count
    survivor.monetary_value = round(survivor.monetary_value + merged.monetary_value, 6)
    survivor.consent = {**merged.consent, **survivor.consent}
    suppressed = dict(merged.suppressed)
    for channel, reason in survivor.suppressed.items():
        suppress(suppressed, channel, reason)
    survivor.suppressed = suppressed
    survivor.traits = {**merged.traits, **survivor.traits}
    survivor.timezone = survivor.timezone or merged.timezone
    survivor.locale = survivor.locale or merged.locale
    survivor.event_count += merged.event_count


def _band(value: float, bounds: list[float] | list[int]) -> int:
    """1 plus the number of ascending bounds that `value` reaches."""
    return 1 + sum(value >= b for b in bounds[:4])


def scores(row: ProfileRow, now: dt.datetime, s: Settings) -> None:
    """Set RFM scores (fixed thresholds from settings) and the lifecycle stage as of `now`."""
    if row.order_count > 0 and row.last_order_at is not None:
        days = (now - row.last_order_at).total_seconds() / 86400
        row.recency_score = 5 - sum(days >= b for b in s.rfm_recency_days[:4])
        row.frequency_score = _band(row.order_count, s.rfm_frequency_orders)
        row.monetary_score = _band(row.monetary_value, s.rfm_monetary_values)
    else:
        row.recency_score = row.frequency_score = row.monetary_score = None
    last = row.last_activity_at or row.first_seen_at
    if last is None:
        row.lifecycle_stage = "new"
        return
    idle_days = (now - last).total_seconds() / 86400
    first = row.first_seen_at or last
    if (now - first).total_seconds() / 86400 < s.lifecycle_new_days:
        row.lifecycle_stage = "new"
    elif idle_days < s.lifecycle_at_risk_days:
        row.lifecycle_stage = "active"
    elif idle_days < s.lifecycle_lapsed_days:
        row.lifecycle_stage = "at_risk"
    elif idle_days < s.lifecycle_churned_days:
        row.lifecycle_stage = "lapsed"
    else:
        row.lifecycle_stage = "churned"
