"""Journey reports at scale: p95 of `GET /v1/journeys/{name}/stats` and of the dashboard's
journey page over real HTTP, beside `GET /healthz` on the same server in the same run (the
limit: the HTTP stack and one database round trip), at one or more store sizes, and how much
the p95 grows per member between sizes (1.0 = linear, 0 = flat).

    python -m bench analytics --members 10000 [--members 100000] [--requests 40]
                              [--old-query] [--database-url URL]

Each size gets its own fresh database (unless `--database-url`). Members are built straight
through the store's batch append (COPY): per member one `journey.entered`, one `message.sent`
(a share without `entry_id`, as sends were recorded before they named their entry), delivery
and click feedback for some, a conversion for some, `journey.message_withheld` for the
holdout, and `--other` unrelated events. The analytics projection then catches up (its rate
is printed) before the reports are measured. `--old-query` also times the funnel query
reports ran before the projection, on the same rows (stopped after 120 s).

`build()` and `measure()` are importable (`bench.scale` calls them).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import random
import time
from typing import Any

import asyncpg

from bench.common import bench_database, percentile, result_line

JOURNEY = "cart_recovery"
T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
DEFAULT_REQUESTS = 40


def _member_events(i: int, rng: random.Random, other: int, old_share: float) -> list[Any]:
    from journeyman.event_store import NewEvent

    entry, did = f"e{i}", f"d{i}"
    holdout = rng.random() < 0.1
    variant = "control" if rng.random() < 0.5 else "urgent"
    base = {"journey": JOURNEY, "workflow_id": f"journey/{JOURNEY}/m{i}"}
    at = T0 + dt.timedelta(seconds=i)
    events = [
        NewEvent(
            "journey.entered",
            {**base, "entry_id": entry, "variant": variant, "holdout": holdout},
            event_id=f"{entry}-in",
            occurred_at=at,
        )
    ]
    if holdout:
        events.append(
            NewEvent(
                "journey.message_withheld",
                {**base, "entry_id": entry, "step": "1:reminder"},
                event_id=f"{entry}-wh",
                occurred_at=at,
            )
        )
    else:
        sent = {**base, "delivery_id": did, "channel": "email" if i % 3 else "sms"}
        if rng.random() >= old_share:
            sent["entry_id"] = entry
        events.append(
            NewEvent(
                "message.sent", sent, event_id=f"{did}-sent", occurred_at=at + dt.timedelta(hours=1)
            )
        )
        if rng.random() < 0.7:
            events.append(NewEvent("message.delivered", {"delivery_id": did}, event_id=f"{did}-dl"))
            if rng.random() < 0.2:
                events.append(
                    NewEvent("message.clicked", {"delivery_id": did}, event_id=f"{did}-ck")
                )
    if rng.random() < 0.1:
        conv_at = at + dt.timedelta(hours=1, minutes=rng.randint(1, 600))
        events.append(
            NewEvent(
                "journey.converted",
                {
                    **base,
                    "entry_id": entry,
                    "variant": variant,
                    "holdout": holdout,
                    "value": round(rng.uniform(5, 200), 2),
                    "at": conv_at.isoformat(),
                    "delivery_id": None if holdout else did,
                },
                event_id=f"{entry}-cv",
                occurred_at=conv_at,
            )
        )
    for k in range(other):
        events.append(
            NewEvent("page.viewed", {"path": f"/p/{k}"}, event_id=f"m{i}-pv{k}", occurred_at=at)
        )
    return events


async def build(
    url: str,
    members: int,
    *,
    other: int = 2,
    old_share: float = 0.2,
    batch_members: int = 1000,
    seed: int = 7,
    project: bool = True,
) -> dict[str, float]:
    """Append the journey history of `members` members to the database at `url`, then let
    the analytics projection catch up. Returns counts and rates."""
    from journeyman.engine.analytics.projector import JourneyStatsProjector
    from journeyman.engine.core.settings import Settings
    from journeyman.event_store import ANY, PostgresEventStore

    rng = random.Random(seed)
    store = await PostgresEventStore.connect(url, min_size=1, max_size=4)
    try:
        events = 0
        started = time.perf_counter()
        for lo in range(0, members, batch_members):
            batch = [
                (f"member-bench{i}", _member_events(i, rng, other, old_share), ANY)
                for i in range(lo, min(members, lo + batch_members))
            ]
            events += sum(len(b[1]) for b in batch)
            await store.append_batch(batch)
        append_s = time.perf_counter() - started
        async with store.pool.acquire() as c:
            await c.execute("ANALYZE")
        out = {"events": events, "append_s": append_s, "append_per_s": events / append_s}
        if project:
            started = time.perf_counter()
            projected = await JourneyStatsProjector(store, Settings()).run_until_caught_up()
            project_s = time.perf_counter() - started
            async with store.pool.acquire() as c:
                await c.execute("ANALYZE")
            out |= {"projected": projected, "project_s": project_s}
            out["project_per_s"] = projected / project_s if project_s else 0.0
        return out
    finally:
        await store.close()


async def _p95(client: Any, path: str, requests: int) -> tuple[float, int]:
    times = []
    status = 0
    for _ in range(requests):
        started = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = r.status_code
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {r.text[:300]}")
    return percentile(times, 95), status


async def measure(
    pool_or_url: asyncpg.Pool | str,
    *,
    requests: int = DEFAULT_REQUESTS,
    journey: str = JOURNEY,
    analytics_url: str | None = None,
) -> dict[str, float]:
    """p95 (ms) of the journey stats API, the dashboard journey page and `/healthz` (the
    limit) over real HTTP against an already built database, and the report's own totals."""
    import httpx
    from journeyman.engine.access.keys import create_key
    from journeyman.engine.api import create_app, serve_in_background
    from journeyman.engine.core.settings import Settings
    from journeyman.event_store import PostgresEventStore
    from pydantic import SecretStr

    if isinstance(pool_or_url, str):
        store = await PostgresEventStore.connect(pool_or_url, min_size=1, max_size=8)
    else:
        store = PostgresEventStore(pool_or_url)
    try:
        settings = Settings(
            secret_key=SecretStr("bench-analytics-" + "x" * 32),
            analytics_database_url=analytics_url,
        )
        token, _ = await create_key(store.pool, ["admin"], name="bench analytics")
        app = create_app(settings, store, run_projector=False)
        async with (
            serve_in_background(app) as url,
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600
            ) as client,
        ):
            for path in ("/healthz", f"/v1/journeys/{journey}/stats"):
                await client.get(path)  # warm up: connections, templates, plugin load
            stats = (await client.get(f"/v1/journeys/{journey}/stats")).json()
            api_ms, _ = await _p95(client, f"/v1/journeys/{journey}/stats", requests)
            page_ms, _ = await _p95(client, f"/dashboard/journeys/{journey}", requests)
            list_ms, _ = await _p95(client, "/v1/journeys", requests)
            health_ms, _ = await _p95(client, "/healthz", requests)
        return {
            "stats_api_p95_ms": api_ms,
            "dashboard_page_p95_ms": page_ms,
            "journeys_list_p95_ms": list_ms,
            "healthz_p95_ms": health_ms,
            "entered": stats["total"]["entered"],
            "messaged": stats["total"]["messaged"],
            "converted": stats["total"]["converted"],
        }
    finally:
        if isinstance(pool_or_url, str):
            await store.close()


# The funnel query reports ran before the analytics projection (for --old-query).
OLD_FUNNEL = """
WITH entries AS (
    SELECT data->>'journey' AS journey, data->>'entry_id' AS entry_id,
           data->>'workflow_id' AS workflow_id,
           coalesce(data->>'variant', 'control') AS variant,
           coalesce((data->>'holdout')::boolean, false) AS holdout
    FROM events WHERE type = 'journey.entered'
),
sends AS (
    SELECT data->>'delivery_id' AS delivery_id, data->>'entry_id' AS entry_id,
           data->>'workflow_id' AS workflow_id
    FROM events WHERE type = 'message.sent'
),
entry_sends AS (
    SELECT e.entry_id, count(s.delivery_id) AS sent
    FROM entries e
    JOIN sends s ON s.entry_id = e.entry_id
        OR (s.entry_id IS NULL AND s.workflow_id = e.workflow_id)
    GROUP BY e.entry_id
)
SELECT e.journey, e.variant, e.holdout, count(*) AS entered,
       count(*) FILTER (WHERE es.sent > 0) AS messaged
FROM entries e LEFT JOIN entry_sends es ON es.entry_id = e.entry_id
GROUP BY 1, 2, 3
"""


async def old_query_ms(url: str, timeout_s: float = 120.0) -> float | None:
    """Milliseconds the pre-projection funnel query takes on this database (None: over
    `timeout_s`)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        started = time.perf_counter()
        try:
            await conn.fetch(OLD_FUNNEL)
        except asyncpg.QueryCanceledError:
            return None
        return (time.perf_counter() - started) * 1000
    finally:
        await conn.close()


def _one_size(members: int, args: argparse.Namespace) -> dict[str, Any]:
    with bench_database(args.database_url) as url:
        built = asyncio.run(build(url, members, other=args.other, old_share=args.old_share))
        measured = asyncio.run(measure(url, requests=args.requests))
        if args.old_query:
            measured["old_funnel_query_ms"] = asyncio.run(old_query_ms(url))
    row = {"members": members, **built, **measured}
    print(
        f"{members:>9,} members, {built['events']:,} events: appended {built['append_per_s']:,.0f}"
        f"/s, projected {built.get('project_per_s', 0):,.0f}/s; p95 stats API "
        f"{measured['stats_api_p95_ms']:.1f} ms, dashboard page "
        f"{measured['dashboard_page_p95_ms']:.1f} ms, journeys list "
        f"{measured['journeys_list_p95_ms']:.1f} ms, /healthz {measured['healthz_p95_ms']:.1f} ms"
        + (
            f"; old funnel query {measured['old_funnel_query_ms']:.0f} ms"
            if measured.get("old_funnel_query_ms")
            else (" ; old funnel query over 120 s" if args.old_query else "")
        ),
        flush=True,
    )
    return row


def growth(small: dict[str, Any], large: dict[str, Any], key: str) -> float:
    """Exponent of p95 growth against members: log(p95 ratio) / log(members ratio)."""
    ratio_members = large["members"] / small["members"]
    ratio = max(large[key], 1e-9) / max(small[key], 1e-9)
    return math.log(ratio) / math.log(ratio_members) if ratio_members > 1 else float("nan")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench analytics")
    parser.add_argument("--members", type=int, action="append")
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--other", type=int, default=2, help="unrelated events per member")
    parser.add_argument("--old-share", type=float, default=0.2)
    parser.add_argument("--old-query", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    sizes = sorted(args.members or ([2000, 10000] if args.quick else [10000, 100000]))
    rows = [_one_size(n, args) for n in sizes]
    extra: dict[str, Any] = {"sizes": rows}
    if len(rows) > 1:
        for key in ("stats_api_p95_ms", "dashboard_page_p95_ms"):
            extra[f"{key}_growth_exponent"] = round(growth(rows[0], rows[-1], key), 3)
        print(
            "growth of p95 per member between the smallest and largest size (1 = linear, "
            f"0 = flat): stats API {extra['stats_api_p95_ms_growth_exponent']}, dashboard page "
            f"{extra['dashboard_page_p95_ms_growth_exponent']}"
        )
    top = rows[-1]
    print(
        result_line(
            "analytics",
            top["stats_api_p95_ms"],
            "ms p95 stats API",
            top["healthz_p95_ms"],
            **{k: v for k, v in extra.items() if k != "sizes"},
            sizes=json.loads(json.dumps(rows, default=str)),
        )
    )
