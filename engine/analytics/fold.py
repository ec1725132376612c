"""How journey events fold into per-entry and per-delivery facts, and into funnel counts.

One fold serves two readers: the projection (`journeyman.engine.analytics.projector`), which writes
the facts and adds the count changes to the count tables, and the reports
(`journeyman.engine.analytics.report`),
which fold the events the projection has not reached yet on top of what it has written. So a
report is always the events' own numbers, and each count can be traced to entries
(`journey_entries`), each entry to its events (`entered_position`, the deliveries'
`sent_position`, the conversions' `global_position`).

An entry counts once its `journey.entered` is seen; facts about it that arrive earlier (a send
that names it) are kept and count from then on. A `message.sent` names its entry
(`entry_id`); one recorded before sends carried it is credited to the latest entry of the
same workflow that entered before it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

TYPES = (
    "journey.entered",
    "journey.message_withheld",
    "journey.converted",
    "message.sent",
    "message.delivered",
    "message.clicked",
    "message.failed",
    "message.suppressed",
    "message.deferred",
)
OUTCOMES = ("message.failed", "message.suppressed", "message.deferred")

FunnelKey = tuple[str, str, bool]  # journey, variant, holdout
ChannelKey = tuple[str, str]  # journey, channel
ZERO = Decimal(0)


@dataclass
class JourneyEvent:
    """The columns of a stored event the fold needs."""

    global_position: int
    tx_id: int
    stream_id: str
    event_id: str
    type: str
    data: dict[str, Any]
    occurred_epoch: float | None


@dataclass
class Entry:
    entry_id: str
    journey: str | None = None
    workflow_id: str | None = None
    variant: str = "control"
    holdout: bool = False
    entered_position: int | None = None
    sent: int = 0
    withheld: bool = False
    delivered: bool = False
    clicked: bool = False
    converted: bool = False
    revenue: Decimal = ZERO

    def counts(self) -> tuple[FunnelKey, list[Any]] | None:
        """This entry's part of its group's funnel (entered, messaged, delivered, clicked,
        converted, revenue, revenue²), or None before it has entered."""
        if self.entered_position is None or self.journey is None:
            return None
        revenue = self.revenue if self.converted else ZERO
        return (self.journey, self.variant, self.holdout), [
            1,
            int(self.sent > 0 or self.withheld),
            int(self.delivered),
            int(self.clicked),
            int(self.converted),
            revenue,
            revenue * revenue,
        ]


@dataclass
class Delivery:
    delivery_id: str
    entry_id: str | None = None
    journey: str | None = None
    channel: str | None = None
    sends: int = 0
    sent_position: int | None = None
    sent_epoch: float | None = None
    delivered: bool = False
    clicked: bool = False

    def counts(self) -> tuple[ChannelKey, list[int]] | None:
        """This delivery's part of its channel's counts (sent, delivered, clicked)."""
        if not self.sends or self.journey is None:
            return None
        return (self.journey, self.channel or ""), [
            self.sends,
            self.sends if self.delivered else 0,
            self.sends if self.clicked else 0,
        ]


@dataclass
class Conversion:
    global_position: int
    journey: str | None
    entry_id: str | None
    delivery_id: str | None
    at_epoch: float | None
    seconds: float | None = None


@dataclass
class Changes:
    """What a run of events changed: the facts it touched and the count differences."""

    entries: dict[str, Entry] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    conversions: list[Conversion] = field(default_factory=list)
    funnel: dict[FunnelKey, list[Any]] = field(default_factory=dict)
    channels: dict[ChannelKey, list[int]] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    touched_entries: set[str] = field(default_factory=set)
    touched_deliveries: set[str] = field(default_factory=set)
    sent_deliveries: set[str] = field(default_factory=set)
    """Deliveries whose first send this run saw (a conversion recorded before may now get
    its time to convert)."""


def text(value: Any) -> str | None:
    """A JSON value as PostgreSQL's `->>` gives it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "t", "yes", "y", "on", "1"}


def amount(value: Any) -> Decimal:
    if value is None:
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"conversion value {value!r} is not a number") from None


def epoch(value: Any) -> float | None:
    if value is None:
        return None
    at = dt.datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError(f"conversion time {value!r} has no time zone")
    return at.timestamp()


def needs(events: Iterable[JourneyEvent]) -> tuple[set[str], set[str], set[str]]:
    """The entry ids, delivery ids and workflow ids whose stored facts a run of events needs."""
    entry_ids: set[str] = set()
    delivery_ids: set[str] = set()
    workflows: set[str] = set()
    for e in events:
        d = e.data
        if e.type in OUTCOMES:
            continue
        if (eid := text(d.get("entry_id"))) is not None:
            entry_ids.add(eid)
        if (did := text(d.get("delivery_id"))) is not None:
            delivery_ids.add(did)
        if e.type == "message.sent" and eid is None and (wf := text(d.get("workflow_id"))):
            workflows.add(wf)
    return entry_ids, delivery_ids, workflows


class Fold:
    """Facts loaded from the projection, folded forward with events; `changes` says what
    changed. Load with `load()` before `apply()`."""

    def __init__(self) -> None:
        self.changes = Changes()
        self._entry_before: dict[str, Any] = {}
        self._delivery_before: dict[str, Any] = {}
        self._by_workflow: dict[str, list[Entry]] = {}

    # ------------------------------------------------------------------ loading
    async def load(self, conn: asyncpg.Connection, events: list[JourneyEvent]) -> None:
        entry_ids, delivery_ids, workflows = needs(events)
        entry_ids -= self.changes.entries.keys()
        delivery_ids -= self.changes.deliveries.keys()
        if delivery_ids:
            for r in await conn.fetch(
                "SELECT * FROM journey_deliveries WHERE delivery_id = ANY($1::text[])",
                list(delivery_ids),
            ):
                self._keep_delivery(Delivery(**dict(r)))
        entry_ids |= {
            d.entry_id
            for d in self.changes.deliveries.values()
            if d.entry_id and d.entry_id not in self.changes.entries
        }
        if entry_ids or workflows:
            for r in await conn.fetch(
                "SELECT * FROM journey_entries WHERE entry_id = ANY($1::text[]) "
                "OR workflow_id = ANY($2::text[])",
                list(entry_ids),
                list(workflows),
            ):
                if r["entry_id"] not in self.changes.entries:
                    self._keep_entry(Entry(**dict(r)))

    def _keep_entry(self, entry: Entry) -> None:
        self.changes.entries[entry.entry_id] = entry
        self._entry_before[entry.entry_id] = entry.counts()
        if entry.workflow_id is not None:
            self._by_workflow.setdefault(entry.workflow_id, []).append(entry)

    def _keep_delivery(self, delivery: Delivery) -> None:
        self.changes.deliveries[delivery.delivery_id] = delivery
        self._delivery_before[delivery.delivery_id] = delivery.counts()

    def _entry(self, entry_id: str) -> Entry:
        found = self.changes.entries.get(entry_id)
        if found is None:
            found = Entry(entry_id)
            self._keep_entry(found)
        self.changes.touched_entries.add(entry_id)
        return found

    def _delivery(self, delivery_id: str) -> Delivery:
        found = self.changes.deliveries.get(delivery_id)
        if found is None:
            found = Delivery(delivery_id)
            self._keep_delivery(found)
        self.changes.touched_deliveries.add(delivery_id)
        return found

    # ------------------------------------------------------------------ folding
    def apply(self, e: JourneyEvent) -> None:
        """Fold one event. Raises ValueError (before changing anything) for one it cannot
        read."""
        d = e.data
        journey = text(d.get("journey"))
        if e.type in OUTCOMES:
            if journey:
                key = (journey, e.type.removeprefix("message."))
                self.changes.outcomes[key] = self.changes.outcomes.get(key, 0) + 1
            return
        entry_id, delivery_id = text(d.get("entry_id")), text(d.get("delivery_id"))
        match e.type:
            case "journey.entered":
                if entry_id is None:
                    return
                entry = self._entry(entry_id)
                if entry.entered_position is None:
                    entry.journey = journey
                    entry.workflow_id = text(d.get("workflow_id"))
                    entry.variant = text(d.get("variant")) or "control"
                    entry.holdout = boolean(d.get("holdout", False))
                    entry.entered_position = e.global_position
                    if entry.workflow_id is not None:
                        self._by_workflow.setdefault(entry.workflow_id, []).append(entry)
            case "journey.message_withheld":
                if entry_id is not None:
                    self._entry(entry_id).withheld = True
            case "message.sent":
                self._sent(e, entry_id, delivery_id, journey)
            case "message.delivered" | "message.clicked":
                if delivery_id is None:
                    return
                delivery = self._delivery(delivery_id)
                flag = "delivered" if e.type == "message.delivered" else "clicked"
                setattr(delivery, flag, True)
                if delivery.entry_id is not None:
                    setattr(self._entry(delivery.entry_id), flag, True)
            case "journey.converted":
                value, at = amount(d.get("value")), epoch(d.get("at"))
                if entry_id is not None:
                    entry = self._entry(entry_id)
                    entry.revenue = max(entry.revenue, value) if entry.converted else value
                    entry.converted = True
                sent = self.changes.deliveries.get(delivery_id) if delivery_id else None
                self.changes.conversions.append(
                    Conversion(
                        e.global_position,
                        journey,
                        entry_id,
                        delivery_id,
                        at,
                        _seconds(at, sent.sent_epoch if sent else None),
                    )
                )

    def _sent(
        self, e: JourneyEvent, entry_id: str | None, delivery_id: str | None, journey: str | None
    ) -> None:
        if entry_id is None:
            entry_id = self._entry_of_workflow(text(e.data.get("workflow_id")), e.global_position)
        delivery = self._delivery(delivery_id) if delivery_id is not None else None
        if delivery is not None:
            if not delivery.sends:
                delivery.journey = journey
                delivery.channel = text(e.data.get("channel"))
                delivery.sent_position = e.global_position
                delivery.sent_epoch = e.occurred_epoch
                delivery.entry_id = entry_id
                self.changes.sent_deliveries.add(delivery.delivery_id)
            delivery.sends += 1
        if entry_id is not None:
            entry = self._entry(entry_id)
            entry.sent += 1
            if delivery is not None:
                entry.delivered |= delivery.delivered
                entry.clicked |= delivery.clicked

    def _entry_of_workflow(self, workflow_id: str | None, position: int) -> str | None:
        """The latest entry of `workflow_id` that entered before `position`."""
        best: Entry | None = None
        for entry in self._by_workflow.get(workflow_id or "", ()):
            at = entry.entered_position
            if (
                at is not None
                and at < position
                and (best is None or at > (best.entered_position or 0))
            ):
                best = entry
        return best.entry_id if best else None

    # ------------------------------------------------------------------ differences
    def finish(self) -> Changes:
        """Work out the count differences of everything touched since loading."""
        ch = self.changes
        for entry_id in ch.touched_entries:
            _add(ch.funnel, self._entry_before.get(entry_id), -1)
            _add(ch.funnel, ch.entries[entry_id].counts(), 1)
            self._entry_before[entry_id] = ch.entries[entry_id].counts()
        for delivery_id in ch.touched_deliveries:
            _add(ch.channels, self._delivery_before.get(delivery_id), -1)
            _add(ch.channels, ch.deliveries[delivery_id].counts(), 1)
            self._delivery_before[delivery_id] = ch.deliveries[delivery_id].counts()
        return ch


def _seconds(at: float | None, sent: float | None) -> float | None:
    """Time from the send to the conversion; None when unknown or when the goal occurred
    before the send (journeys credit only later goals)."""
    if at is None or sent is None or at < sent:
        return None
    return at - sent


def _add(into: dict[Any, list[Any]], part: tuple[Any, list[Any]] | None, sign: int) -> None:
    if part is None:
        return
    key, values = part
    total = into.setdefault(key, [0] * len(values))
    for i, v in enumerate(values):
        total[i] += v * sign


ENTRY_COLUMNS = [f.name for f in fields(Entry)]
DELIVERY_COLUMNS = [f.name for f in fields(Delivery)]
CONVERSION_COLUMNS = [f.name for f in fields(Conversion)]
