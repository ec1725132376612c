"""Journey analytics computed from the events themselves, so every figure can be traced.

An *entry* is one run of a journey for a member (`journey.entered`, identified by its
`entry_id`). For each journey and variant, and for the treatment and holdout groups:
entered, messaged (at least one `message.sent`; for holdout entries, at least one
`journey.message_withheld`), delivered, clicked, converted (`journey.converted`) and revenue
attributed (the goal event's value). Lift compares the treatment with the holdout of the same
journey: the difference in conversion rate (95% Newcombe interval) and in revenue per entry
(95% Welch interval). Messages are also broken down by channel, and the time from the
crediting send to the conversion is summarised.

The figures are read from the analytics projection (`journeyman.engine.analytics.projector`:
per-entry facts and the counts kept from them, so a report costs the same at a thousand entries or a
million) plus the events it has not reached yet, folded by the same code
(`journeyman.engine.analytics.fold`) in the same snapshot. A report is never behind the store, and
each count lists its entries in `journey_entries`, each with the positions of its events.
Reports read through the analytics database (`JOURNEYMAN_ANALYTICS_DATABASE_URL`, a read
replica; by default the main database) and never write.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from .fold import Changes, Fold
from .projector import CHANNEL_VALUES, FUNNEL_VALUES, checkpoint, read_events
from .stats import Interval, mean_difference, rate_difference

_FUNNEL = """
SELECT journey, variant, holdout, entered, messaged, delivered, clicked, converted,
       revenue, revenue_sq
FROM journey_funnel_counts WHERE ($1::text IS NULL OR journey = $1)
"""
_CHANNELS = """
SELECT journey, channel, sent, delivered, clicked
FROM journey_channel_counts WHERE ($1::text IS NULL OR journey = $1)
"""
_OUTCOMES = """
SELECT journey, type, n FROM journey_outcome_counts WHERE ($1::text IS NULL OR journey = $1)
"""
# Time to convert is the one figure read from rows rather than counts: exact percentiles
# over the journey's conversions (about 100 ms for 100,000 of them on a small server).
_TIME_TO_CONVERT = """
SELECT journey,
       percentile_cont(ARRAY[0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (ORDER BY seconds) AS q,
       count(*) AS n
FROM (
    SELECT journey, seconds FROM journey_conversions
    WHERE seconds IS NOT NULL AND {where}
    UNION ALL
    SELECT journey, seconds FROM unnest($2::text[], $3::float8[]) AS t(journey, seconds)
    WHERE {where}
) AS c
WHERE journey IS NOT NULL
GROUP BY journey
"""
_TIME_TO_CONVERT_ONE = _TIME_TO_CONVERT.format(where="journey = $1")
_TIME_TO_CONVERT_ALL = _TIME_TO_CONVERT.format(where="$1::text IS NULL")


@dataclass
class Funnel:
    entered: int = 0
    messaged: int = 0
    delivered: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.entered if self.entered else 0.0

    @property
    def revenue_per_entry(self) -> float:
        return self.revenue / self.entered if self.entered else 0.0

    def add(self, other: Funnel) -> None:
        for name in ("entered", "messaged", "delivered", "clicked", "converted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.revenue += other.revenue
        self.revenue_sq += other.revenue_sq

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("revenue_sq")
        d["revenue"] = round(self.revenue, 2)
        d["conversion_rate"] = round(self.conversion_rate, 4)
        d["revenue_per_entry"] = round(self.revenue_per_entry, 4)
        return d


@dataclass
class JourneyStats:
    journey: str
    variants: dict[str, Funnel] = field(default_factory=dict)
    """Treatment funnels by variant."""
    holdout: Funnel = field(default_factory=Funnel)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    time_to_convert_s: dict[str, float] = field(default_factory=dict)

    @property
    def treatment(self) -> Funnel:
        total = Funnel()
        for f in self.variants.values():
            total.add(f)
        return total

    @property
    def total(self) -> Funnel:
        total = self.treatment
        total.add(self.holdout)
        return total

    def conversion_lift(self) -> Interval | None:
        """Treatment minus holdout conversion rate, or None without a holdout group."""
        t, h = self.treatment, self.holdout
        if not h.entered or not t.entered:
            return None
        return rate_difference(t.converted, t.entered, h.converted, h.entered)

    def revenue_lift(self) -> Interval | None:
        t, h = self.treatment, self.holdout
        if not h.entered or not t.entered:
            return None
        return mean_difference(
            t.entered, t.revenue, t.revenue_sq, h.entered, h.revenue, h.revenue_sq
        )

    def as_dict(self) -> dict[str, Any]:
        conv, rev = self.conversion_lift(), self.revenue_lift()
        return {
            "journey": self.journey,
            "total": self.total.as_dict(),
            "treatment": self.treatment.as_dict(),
            "holdout": self.holdout.as_dict(),
            "variants": {k: v.as_dict() for k, v in sorted(self.variants.items())},
            "lift": {
                "conversion_rate": None if conv is None else conv.as_dict(),
                "revenue_per_entry": None if rev is None else rev.as_dict(),
            },
            "channels": self.channels,
            "outcomes": self.outcomes,
            "time_to_convert_seconds": self.time_to_convert_s,
        }


MAX_UNPROJECTED = 200_000
"""A report folds at most this many events the projection has not reached; past that (the
projection is replaying the store after an upgrade) it says so instead of answering late."""


class ProjectionBehind(RuntimeError):
    """The analytics projection is too far behind for a report to count the rest itself."""


async def journey_stats(
    pool: asyncpg.Pool | asyncpg.Connection,
    journey: str | None = None,
    *,
    detail: bool = True,
    max_unprojected: int = MAX_UNPROJECTED,
) -> list[JourneyStats]:
    """Stats for every journey (or one): the analytics projection's counts plus the events it
    has not reached yet, read in one snapshot. `detail=False` leaves out channels, outcomes
    and time to convert (the journey list needs only the funnels). Raises ProjectionBehind
    when more than `max_unprojected` events are still to be projected."""
    if isinstance(pool, asyncpg.Connection):
        if pool.is_in_transaction():
            return await _read(pool, journey, detail, max_unprojected)
        async with pool.transaction(isolation="repeatable_read", readonly=True):
            return await _read(pool, journey, detail, max_unprojected)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await _read(conn, journey, detail, max_unprojected)


async def _read(
    conn: asyncpg.Connection, journey: str | None, detail: bool, max_unprojected: int
) -> list[JourneyStats]:
    tail = await _unprojected(conn, max_unprojected)
    stats: dict[str, JourneyStats] = {}

    def get(name: str) -> JourneyStats:
        return stats.setdefault(name, JourneyStats(name))

    def wanted(name: str | None) -> bool:
        return name is not None and (journey is None or name == journey)

    funnels: dict[tuple[str, str, bool], list[Any]] = {}
    for r in await conn.fetch(_FUNNEL, journey):
        funnels[(r["journey"], r["variant"], r["holdout"])] = [r[c] for c in FUNNEL_VALUES]
    _merge(funnels, {k: v for k, v in tail.funnel.items() if wanted(k[0])})
    for (name, variant, holdout), v in sorted(funnels.items()):
        if v[0] <= 0:
            continue
        funnel = Funnel(*(int(x) for x in v[:5]), float(v[5]), float(v[6]))
        js = get(name)
        if holdout:
            js.holdout.add(funnel)
        else:
            js.variants.setdefault(variant, Funnel()).add(funnel)
    if not detail:
        return [stats[k] for k in sorted(stats)]
    channels: dict[tuple[str, str], list[Any]] = {}
    for r in await conn.fetch(_CHANNELS, journey):
        channels[(r["journey"], r["channel"])] = [r[c] for c in CHANNEL_VALUES]
    _merge(channels, {k: v for k, v in tail.channels.items() if wanted(k[0])})
    for (name, channel), v in sorted(channels.items()):
        if v[0] > 0:
            get(name).channels[channel] = dict(zip(CHANNEL_VALUES, map(int, v), strict=True))
    outcomes = {(r["journey"], r["type"]): r["n"] for r in await conn.fetch(_OUTCOMES, journey)}
    for key, n in tail.outcomes.items():
        if wanted(key[0]):
            outcomes[key] = outcomes.get(key, 0) + n
    for (name, kind), n in sorted(outcomes.items()):
        if n:
            get(name).outcomes[kind] = n
    timed = [c for c in tail.conversions if c.seconds is not None]
    sql = _TIME_TO_CONVERT_ALL if journey is None else _TIME_TO_CONVERT_ONE
    for r in await conn.fetch(sql, journey, [c.journey for c in timed], [c.seconds for c in timed]):
        q = r["q"]
        get(r["journey"]).time_to_convert_s = {
            "p25": q[0],
            "p50": q[1],
            "p75": q[2],
            "p90": q[3],
            "n": r["n"],
        }
    return [stats[k] for k in sorted(stats)]


async def _unprojected(conn: asyncpg.Connection, limit: int) -> Changes:
    """What the events after the projection's checkpoint change (none while it keeps up)."""
    events, _ = await read_events(conn, await checkpoint(conn), limit=limit + 1)
    if len(events) > limit:
        raise ProjectionBehind(
            f"the journey analytics projection is more than {limit:,} events behind the store "
            "(it replays the store once after an upgrade); reports answer once it has caught up"
        )
    fold = Fold()
    if events:
        await fold.load(conn, events)
    for e in events:
        try:
            fold.apply(e)
        except (ValueError, TypeError, ArithmeticError):
            continue  # the projection parks it as a dead letter
    return fold.finish()


def _merge(into: dict[Any, list[Any]], add: dict[Any, list[Any]]) -> None:
    for key, values in add.items():
        total = into.setdefault(key, [0] * len(values))
        for i, v in enumerate(values):
            total[i] += v


_TRACE_TYPES = (
    "journey.entered",
    "journey.exited",
    "journey.converted",
    "journey.message_withheld",
    "message.sent",
    "message.deferred",
    "message.suppressed",
    "message.failed",
    "message.delivered",
    "message.bounced",
    "message.opened",
    "message.clicked",
    "member.unsubscribed",
    "member.consent_changed",
)


async def member_trace(pool: asyncpg.Pool | asyncpg.Connection, member_id: str) -> list[dict]:
    """What happened to a member in journeys, in order: why they did or did not get a message."""
    sql = (
        "SELECT global_position, type, data, occurred_at FROM events "
        "WHERE stream_id = $1 AND type = ANY($2::text[]) ORDER BY stream_version"
    )
    args = (f"member-{member_id}", list(_TRACE_TYPES))
    try:
        rows: list[Any] = [dict(r) for r in await pool.fetch(sql, *args)]
    except (OverflowError, ValueError):
        # An event the driver cannot decode (a date before year 1, an integer past Python's
        # digit limit): read those columns as text, so the trace still answers.
        rows = [
            {**r, "data": _loads(r["data"])}
            for r in map(
                dict,
                await pool.fetch(
                    sql.replace("data, occurred_at", "data::text, occurred_at::text"), *args
                ),
            )
        ]
    trace = []
    for r in rows:
        data = r["data"] or {}
        at = r["occurred_at"]
        trace.append(
            {
                "position": r["global_position"],
                "at": at if isinstance(at, str) else at.isoformat(),
                "type": r["type"],
                "journey": data.get("journey"),
                "entry_id": data.get("entry_id"),
                "step": data.get("step"),
                "channel": data.get("channel"),
                "template": data.get("template"),
                "delivery_id": data.get("delivery_id"),
                "reason": data.get("reason"),
                "explanation": _explain(r["type"], data),
            }
        )
    return trace


def _loads(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _explain(kind: str, data: dict) -> str:
    j = data.get("journey") or "a journey"
    step = data.get("step") or data.get("template") or "a message"
    reason = data.get("reason")
    match kind:
        case "journey.entered":
            group = "holdout (messages withheld)" if data.get("holdout") else "treatment"
            return f"entered {j}, variant {data.get('variant', 'control')}, {group}"
        case "journey.exited":
            return f"left {j}: {reason or data.get('status', 'done')}"
        case "journey.converted":
            return f"converted in {j} ({data.get('goal')}), credited to {data.get('step') or '-'}"
        case "journey.message_withheld":
            return f"{step} withheld: member is in the holdout group of {j}"
        case "message.sent":
            return f"{step} sent by {data.get('channel')}"
        case "message.deferred":
            return f"{step} deferred until {data.get('defer_until')}: {reason or 'quiet hours'}"
        case "message.suppressed":
            return f"{step} not sent: {reason or 'suppressed by policy'}"
        case "message.failed":
            return f"{step} failed on {data.get('channel')}: {reason or data.get('error', '')}"
        case _:
            return kind.replace(".", " ")
