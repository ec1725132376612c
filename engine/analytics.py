"""Journey analytics computed from the events themselves, so every figure can be traced.

An *entry* is one run of a journey for a member (`journey.entered`, identified by its
`entry_id`). For each journey and variant, and for the treatment and holdout groups:
entered, messaged (at least one `message.sent`; for holdout entries, at least one
`journey.message_withheld`), delivered, clicked, converted (`journey.converted`) and revenue
attributed (the goal event's value). Lift compares the treatment with the holdout of the same
journey: the difference in conversion rate (95% Newcombe interval) and in revenue per entry
(95% Welch interval). Messages are also broken down by channel, and the time from the
crediting send to the conversion is summarised.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from .stats import Interval, mean_difference, rate_difference

_PER_ENTRY = """
WITH entries AS (
    SELECT data->>'journey' AS journey, data->>'entry_id' AS entry_id,
           data->>'workflow_id' AS workflow_id,
           coalesce(data->>'variant', 'control') AS variant,
           coalesce((data->>'holdout')::boolean, false) AS holdout
    FROM events
    WHERE type = 'journey.entered' AND ($1::text IS NULL OR data->>'journey' = $1)
),
sends AS (
    SELECT data->>'delivery_id' AS delivery_id, data->>'entry_id' AS entry_id,
           data->>'workflow_id' AS workflow_id
    FROM events WHERE type = 'message.sent'
),
feedback AS (
    SELECT data->>'delivery_id' AS delivery_id,
           bool_or(type = 'message.delivered') AS delivered,
           bool_or(type = 'message.clicked') AS clicked
    FROM events WHERE type IN ('message.delivered', 'message.clicked')
    GROUP BY 1
),
entry_sends AS (
    SELECT e.entry_id, count(s.delivery_id) AS sent,
           coalesce(bool_or(f.delivered), false) AS delivered,
           coalesce(bool_or(f.clicked), false) AS clicked
    FROM entries e
    JOIN sends s ON s.entry_id = e.entry_id
        OR (s.entry_id IS NULL AND s.workflow_id = e.workflow_id)
    LEFT JOIN feedback f ON f.delivery_id = s.delivery_id
    GROUP BY e.entry_id
),
withheld AS (
    SELECT DISTINCT data->>'entry_id' AS entry_id
    FROM events WHERE type = 'journey.message_withheld'
),
conversions AS (
    SELECT data->>'entry_id' AS entry_id,
           max(coalesce((data->>'value')::numeric, 0)) AS revenue
    FROM events WHERE type = 'journey.converted'
    GROUP BY 1
)
SELECT e.journey, e.variant, e.holdout,
       count(*) AS entered,
       count(*) FILTER (WHERE es.sent > 0 OR w.entry_id IS NOT NULL) AS messaged,
       count(*) FILTER (WHERE es.delivered) AS delivered,
       count(*) FILTER (WHERE es.clicked) AS clicked,
       count(c.entry_id) AS converted,
       coalesce(sum(c.revenue), 0)::float8 AS revenue,
       coalesce(sum(c.revenue * c.revenue), 0)::float8 AS revenue_sq
FROM entries e
LEFT JOIN entry_sends es ON es.entry_id = e.entry_id
LEFT JOIN withheld w ON w.entry_id = e.entry_id
LEFT JOIN conversions c ON c.entry_id = e.entry_id
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3
"""

_CHANNELS = """
WITH sends AS (
    SELECT data->>'journey' AS journey, data->>'channel' AS channel,
           data->>'delivery_id' AS delivery_id
    FROM events WHERE type = 'message.sent' AND ($1::text IS NULL OR data->>'journey' = $1)
)
SELECT s.journey, s.channel, count(*) AS sent,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events f WHERE f.type = 'message.delivered'
                                      AND f.data->>'delivery_id' = s.delivery_id)) AS delivered,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM events f WHERE f.type = 'message.clicked'
                                      AND f.data->>'delivery_id' = s.delivery_id)) AS clicked
FROM sends s GROUP BY 1, 2 ORDER BY 1, 2
"""

_OTHER_OUTCOMES = """
SELECT data->>'journey' AS journey, type, count(*) AS n
FROM events
WHERE type IN ('message.failed', 'message.suppressed', 'message.deferred')
  AND ($1::text IS NULL OR data->>'journey' = $1)
GROUP BY 1, 2
"""

_TIME_TO_CONVERT = """
SELECT c.data->>'journey' AS journey,
       percentile_cont(ARRAY[0.25, 0.5, 0.75, 0.9]) WITHIN GROUP (
           ORDER BY extract(epoch FROM ((c.data->>'at')::timestamptz - s.occurred_at))
       ) AS q,
       count(*) AS n
FROM events c
JOIN events s ON s.type = 'message.sent' AND s.data->>'delivery_id' = c.data->>'delivery_id'
WHERE c.type = 'journey.converted' AND ($1::text IS NULL OR c.data->>'journey' = $1)
  -- journeys credit only goals that occurred after the send; conversions recorded before
  -- they did (a late-arriving order credited to a later message) have no time to convert
  AND (c.data->>'at')::timestamptz >= s.occurred_at
GROUP BY 1
"""


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


async def journey_stats(
    pool: asyncpg.Pool | asyncpg.Connection, journey: str | None = None
) -> list[JourneyStats]:
    """Stats for every journey (or one), straight from the event store."""
    stats: dict[str, JourneyStats] = {}

    def get(name: str) -> JourneyStats:
        return stats.setdefault(name, JourneyStats(name))

    for r in await pool.fetch(_PER_ENTRY, journey):
        funnel = Funnel(
            r["entered"],
            r["messaged"],
            r["delivered"],
            r["clicked"],
            r["converted"],
            r["revenue"],
            r["revenue_sq"],
        )
        js = get(r["journey"])
        if r["holdout"]:
            js.holdout.add(funnel)
        else:
            js.variants.setdefault(r["variant"], Funnel()).add(funnel)
    for r in await pool.fetch(_CHANNELS, journey):
        get(r["journey"]).channels[r["channel"]] = {
            "sent": r["sent"],
            "delivered": r["delivered"],
            "clicked": r["clicked"],
        }
    for r in await pool.fetch(_OTHER_OUTCOMES, journey):
        if r["journey"]:
            get(r["journey"]).outcomes[r["type"].removeprefix("message.")] = r["n"]
    for r in await pool.fetch(_TIME_TO_CONVERT, journey):
        q = r["q"]
        get(r["journey"]).time_to_convert_s = {
            "p25": q[0],
            "p50": q[1],
            "p75": q[2],
            "p90": q[3],
            "n": r["n"],
        }
    return [stats[k] for k in sorted(stats)]


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
