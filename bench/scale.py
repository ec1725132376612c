"""How the engine's costs grow with the shop: a store of N members, about 20 events each.

    python -m bench scale                       # 100,000 and 1,000,000 members, growth table
    python -m bench scale --quick               # 100,000 members (and a 10,000 reference)
    python -m bench scale --members 20000       # one size
    python -m bench scale --sizes 10000,20000   # a growth table at small sizes

For each size, on a fresh embedded PostgreSQL and a fresh Temporal dev server, each measure
beside a limit or peer of the same run where one exists:

- load: the shop written through the store's `append_batch` (batches of 1,000), against a
  raw COPY of the same kind of rows into the same table, in the first and the last 10% of
  the load (does appending slow down as the table grows?);
- profile projection rebuild (events/s) against a bare fold of the same rows in one process
  (read, `apply`, `scores`; no writes), its rate taken over the first 200,000 events;
- inactivity scan with 1% of the members due: seconds to find them (target <= 2 s at 1M),
  against one bare count over the profile index; and the workflow starts it makes (must
  equal the due members);
- segment refresh: seconds per member, and how long it holds up the profile projection
  (an event appended during the refresh, until projected);
- a journey's dashboard page and `GET /v1/journeys/{name}/stats` (1 entry and 1 send per
  member): p95 (target <= 500 ms);
- dispatcher: triggers routed per second against bare signal-with-start calls to the same
  Temporal server;
- memory of each process at the start and at the end.

With two or more sizes it prints the cost-growth table (largest over smallest; per-member
and per-due-member costs should stay within 1.5x). The last line is JSON.

Each measure is one `measure_*` function below; where a part has a bench of its own
(`bench projection`, `bench analytics`, `bench dispatch`, `bench scan`), that bench measures
it in more detail on a shop built for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journeyman.event_store import ANY, NewEvent, PostgresEventStore
from pydantic import SecretStr

from . import _procs, _shop
from .common import percentile, result_line

QUICK = 100_000
FULL = (100_000, 1_000_000)
QUICK_REFERENCE = 10_000
SEED = 7
TRIGGERS = 200
API_BUDGET_S = 60.0
REQUEST_TIMEOUT_S = 30.0
SCAN_TARGET_S = 2.0
API_TARGET_MS = 500.0
FLAT = 1.5
FOLD_SAMPLE = 200_000


def _settings(data_dir: Path) -> Any:
    from journeyman.engine.core.settings import Settings

    return Settings(secret_key=SecretStr("bench-scale-" + "s" * 40), data_dir=data_dir)


# ---------------------------------------------------------------------------- measures


async def measure_projection(
    url: str, store: PostgresEventStore, settings: Any, events: int
) -> dict[str, Any]:
    """Profile projection rebuild against a bare fold of the same rows (`bench projection`,
    on the shop already loaded, with every plugin's segments as in production). The bare
    fold's rate is taken over the first `FOLD_SAMPLE` events: a rate, it needs no more."""
    from bench.projection import measure_projection as measure

    return await measure(url, store, settings, events, fold_limit=FOLD_SAMPLE)


async def measure_scan(
    url: str, store: PostgresEventStore, client: Any, now: dt.datetime, due: int
) -> dict[str, Any]:
    """The inactivity scan for the win-back journey: finding the due members (the scan's own
    paging over `inactivity_due` by its partial index), then the whole activity in an
    activity environment (finding and starting), against a bare indexed count of the same
    rows."""
    from journeyman.engine.activities.journey_activities import JourneyActivities
    from journeyman.engine.contracts import ScanRequest
    from journeyman.engine.profiles import inactivity_due
    from journeyman.workflows.winback import Winback
    from temporalio.testing import ActivityEnvironment

    tq = f"scan-{uuid.uuid4().hex[:6]}"
    acts = JourneyActivities(store, client=client, journeys={"winback": Winback}, task_queue=tq)

    t0 = time.perf_counter()
    found, after = 0, None
    while True:
        page = await inactivity_due.due_page(store.pool, "winback", now, after, 500)
        found += len(page)
        if len(page) < 500:
            break
        after = page[-1]
    find_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    bare = await store.pool.fetchval(
        "SELECT count(*) FROM inactivity_due WHERE journey = 'winback' "
        "AND due_at IS NOT NULL AND due_at <= $1",
        now,
    )
    bare_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = await ActivityEnvironment().run(
        acts.scan_inactive, ScanRequest(journeys=["winback"], now=now)
    )
    scan_s = time.perf_counter() - t0
    started = await _count_workflows(
        client, f"WorkflowType = 'winback' AND TaskQueue = '{tq}'", result.started
    )
    return {
        "due": due,
        "found": found,
        "find_s": find_s,
        "bare_count": bare,
        "bare_count_s": bare_s,
        "scan_s": scan_s,
        "examined": result.examined,
        "started": result.started,
        "temporal_starts": started,
        "ms_per_due_member_find": find_s / max(1, due) * 1e3,
        "ms_per_due_member_scan": scan_s / max(1, due) * 1e3,
    }


async def measure_analytics_projection(store: PostgresEventStore, settings: Any) -> dict[str, Any]:
    """The journey analytics projection catching up from the start of the store, as after an
    upgrade; the API's reports then read its counts (a report far behind answers 503)."""
    from journeyman.engine.analytics.projector import JourneyStatsProjector

    t0 = time.perf_counter()
    events = await JourneyStatsProjector(store, settings).run_until_caught_up()
    seconds = time.perf_counter() - t0
    return {"events": events, "seconds": seconds, "events_per_s": events / max(seconds, 1e-9)}


async def measure_api(url: str, settings: Any) -> dict[str, Any]:
    """A journey's dashboard page and its stats endpoint, p95 over repeated requests (at
    least 5, then until `API_BUDGET_S` is spent, at most 20 each). A request is given
    `REQUEST_TIMEOUT_S` (the API's database sessions get it as `statement_timeout`): one
    that takes longer counts as that long, is reported in `timed_out`, and its path is not
    asked again. `create_app` served in this process."""
    import httpx
    from journeyman.engine.access.keys import create_key
    from journeyman.engine.api.app import create_app
    from journeyman.engine.api.server import serve_in_background

    limit_ms = REQUEST_TIMEOUT_S * 1000
    # A timed-out request is an expected outcome here, counted below, not a traceback.
    quiet = [logging.getLogger(n) for n in ("journeyman.engine.api.errors", "uvicorn.error")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.CRITICAL)
    sep = "&" if "?" in url else "?"
    store = await PostgresEventStore.connect(
        f"{url}{sep}statement_timeout={int(limit_ms)}", min_size=1, max_size=4
    )
    token, _ = await create_key(store.pool, ["read", "admin"], name="bench scale")
    app = create_app(settings, store, run_projector=False)
    paths = {
        "dashboard": f"/dashboard/journeys/{_shop.JOURNEY}",
        "stats": f"/v1/journeys/{_shop.JOURNEY}/stats",
    }
    samples: dict[str, list[float]] = {k: [] for k in paths}
    timed_out: dict[str, int] = {k: 0 for k in paths}
    entered = None
    try:
        async with (
            serve_in_background(app) as base,
            httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {token}"},
                timeout=REQUEST_TIMEOUT_S + 5,
            ) as http,
        ):
            started = time.perf_counter()
            for n in range(20):
                for name, path in paths.items():
                    if timed_out[name]:
                        continue
                    t0 = time.perf_counter()
                    try:
                        r = await http.get(path)
                        took = (time.perf_counter() - t0) * 1000
                        ok = r.status_code == 200 and took < limit_ms
                    except httpx.TimeoutException:
                        r, ok = None, False
                    if not ok:
                        if r is not None and (r.status_code != 500 or took < 0.9 * limit_ms):
                            r.raise_for_status()
                            raise RuntimeError(f"{path} answered {r.status_code} in {took:.0f} ms")
                        timed_out[name] += 1
                        samples[name].append(limit_ms)
                        continue
                    samples[name].append(took)
                    if name == "stats":
                        entered = r.json()["variants"].get("control", {}).get("entered")
                if all(timed_out.values()) or (
                    n >= 4 and time.perf_counter() - started > API_BUDGET_S
                ):
                    break
    finally:
        await store.close()
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return {
        **{f"{k}_p95_ms": percentile(v, 95) for k, v in samples.items()},
        **{f"{k}_p50_ms": percentile(v, 50) for k, v in samples.items()},
        "requests": {k: len(v) for k, v in samples.items()},
        "timed_out": timed_out,
        "timeout_ms": limit_ms,
        "entered": entered,
    }


# ---------------------------------------------------------------------------- own measures


async def measure_refresh(store: PostgresEventStore, settings: Any) -> dict[str, Any]:
    """Segment refresh over every profile, and how long it holds up the profile projection:
    while it runs, an event is appended every 0.2 s and timed until it is projected."""
    from journeyman.engine.profiles.projector import ProfileProjector
    from journeyman.engine.profiles.segment_refresh import refresh
    from journeyman.engine.segments import registered_segments

    projector = ProfileProjector(store, settings)
    member = f"member-{_shop.member_id(SEED, 1)}"
    pages: list[float] = []
    last = time.perf_counter()

    def page(_: Any) -> None:
        nonlocal last
        now = time.perf_counter()
        pages.append(now - last)
        last = now

    done = asyncio.Event()
    waits: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            await store.append(member, [NewEvent("app.opened", {"probe": True})])
            t0 = time.perf_counter()
            await projector.run_until_caught_up()
            waits.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)

    t0 = time.perf_counter()
    task = asyncio.create_task(probe())
    result = await refresh(
        store,
        registered_segments(),
        settings=settings,
        now=dt.datetime.now(dt.UTC),
        on_page=page,
    )
    took = time.perf_counter() - t0
    done.set()
    await task
    return {
        "members": result.examined,
        "refresh_s": took,
        "us_per_member": took / max(1, result.examined) * 1e6,
        "longest_page_s": max(pages, default=0.0),
        "projection_wait_max_s": max(waits, default=0.0),
        "projection_wait_p95_s": percentile(waits, 95) if waits else 0.0,
        "entered": len(result.changes.entered),
        "exited": len(result.changes.exited),
    }


async def measure_dispatcher(
    store: PostgresEventStore, client: Any, members: int, triggers: int
) -> dict[str, Any]:
    """Cart triggers routed by the dispatcher (catch-up from the store to signal-with-start)
    against bare signal-with-start calls with the same concurrency, to the same Temporal
    server; no worker polls either task queue, so only the start is measured. Alternating,
    two rounds, each one's best."""
    from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput
    from journeyman.engine.routing.dispatcher import Dispatcher
    from journeyman.workflows.cart_recovery import CartRecovery

    spec = CartRecovery.__journey__
    settings = spec.resolve_settings(None).model_dump(mode="json")
    step = max(1, members // triggers)
    chosen = [_shop.member_id(SEED, i) for i in range(1, members, step)][:triggers]
    bare_rates, rates = [], []
    for r in range(2):
        tq = f"bare-{uuid.uuid4().hex[:6]}"
        sem = asyncio.Semaphore(32)

        async def bare(mid: str, r: int = r, tq: str = tq, sem: asyncio.Semaphore = sem) -> None:
            key = f"bare{r}"
            trigger = JourneyEvent(position=1, type="cart.updated", data={"cart_id": key})
            async with sem:
                await client.start_workflow(
                    spec.name,
                    JourneyInput(member_id=mid, key=key, trigger=trigger, settings=settings),
                    id=spec.workflow_id(mid, key),
                    task_queue=tq,
                    start_signal=EVENT_SIGNAL,
                    start_signal_args=[trigger],
                )

        t0 = time.perf_counter()
        await asyncio.gather(*(bare(m) for m in chosen))
        bare_rates.append(len(chosen) / (time.perf_counter() - t0))

        name = f"bench-dispatcher-{r}"
        await store.save_checkpoint(name, await store.head())
        now = dt.datetime.now(dt.UTC)
        await store.append_batch(
            [
                (
                    f"member-{m}",
                    [
                        NewEvent(
                            "cart.updated",
                            {"cart_id": f"disp{r}", "items": [{"sku": "sku-001", "qty": 1}]},
                            occurred_at=now,
                        )
                    ],
                    ANY,
                )
                for m in chosen
            ]
        )
        d = Dispatcher(
            store,
            client,
            {"cart_recovery": CartRecovery},
            task_queue=f"disp-{uuid.uuid4().hex[:6]}",
            name=name,
        )
        t0 = time.perf_counter()
        await d.run(follow=False)
        rates.append(d.stats["started"] / (time.perf_counter() - t0))
        if d.stats["started"] != len(chosen):
            raise RuntimeError(
                f"the dispatcher started {d.stats['started']} runs for {len(chosen)} triggers"
            )
    return {
        "triggers": len(chosen),
        "triggers_per_s": max(rates),
        "bare_per_s": max(bare_rates),
        "ratio": max(rates) / max(bare_rates),
    }


async def _storage(store: PostgresEventStore, events: int, members: int) -> dict[str, float]:
    """Bytes on disk per event (the events table with its indexes) and per member profile."""
    async with store.pool.acquire() as c:
        ev = await c.fetchval("SELECT pg_total_relation_size('events')")
        prof = await c.fetchval("SELECT pg_total_relation_size('member_profiles')")
    return {"bytes_per_event": ev / max(1, events), "bytes_per_profile": prof / max(1, members)}


async def _count_workflows(client: Any, query: str, expected: int) -> int | None:
    """Workflows the server counts for `query`. Its visibility store catches up shortly after
    the starts: polled until it reaches `expected`, or for 15 s, then it is what it counts."""
    try:
        deadline = time.monotonic() + 15
        while True:
            n = (await client.count_workflows(query)).count
            if n >= expected or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.25)
    except Exception:
        return None


# ---------------------------------------------------------------------------- one size


@asynccontextmanager
async def _servers(database_url: str | None) -> AsyncIterator[tuple[str, Path | None, Any]]:
    """A migrated PostgreSQL (embedded, unless `database_url`) and a Temporal dev server."""
    from journeyman.engine.runtime.db import migrate
    from journeyman.engine.runtime.stack import EmbeddedPostgres, temporal_cli
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    root = Path(tempfile.mkdtemp(prefix="journeyman-scale-"))
    pg = None
    env = None
    # Temporal starts while PostgreSQL starts and migrates: neither waits for the other.
    temporal = asyncio.ensure_future(
        WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            data_converter=pydantic_data_converter,
            dev_server_extra_args=["--log-level", "error"],
        )
    )
    try:
        if database_url:
            url, pgdata = database_url, None
        else:
            pg = EmbeddedPostgres(root / "pg")
            await asyncio.to_thread(pg.start)
            url, pgdata = pg.url, pg.pgdata
        await migrate(url)
        env = await temporal
        yield url, pgdata, env.client
    finally:
        if env is None:
            with contextlib.suppress(Exception):  # start it fully, to stop it
                env = await temporal
        if env is not None:
            await env.shutdown()
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        shutil.rmtree(root, ignore_errors=True)


def _say(msg: str) -> None:
    print(f"  {msg}", flush=True)


async def run_size(members: int, database_url: str | None) -> dict[str, Any]:
    """Every measure at one size; returns them as one dict."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    out: dict[str, Any] = {"members": members}
    async with _servers(database_url) as (url, pgdata, client):
        store = await PostgresEventStore.connect(url, min_size=2, max_size=10)
        data_dir = Path(tempfile.mkdtemp(prefix="journeyman-scale-data-"))
        try:
            settings = _settings(data_dir)
            out["memory_start_mb"] = _procs.snapshot(pgdata)
            print(f"{members:,} members, about {members * 20:,} events", flush=True)

            loaded = await _shop.load(store, url, members, SEED, now)
            async with store.pool.acquire() as c:
                # What autovacuum does to a settled store: statistics, and the visibility
                # map that lets index scans skip the heap. Right after a bulk load neither
                # is there yet, and the first readers would measure that instead.
                await c.execute("VACUUM (ANALYZE)")
            out["load"] = {
                "events": loaded.events,
                "wall_s": loaded.wall_s,
                "store_events_per_s": loaded.store_events / loaded.store_s if loaded.store_s else 0,
                "us_per_member": loaded.wall_s / members * 1e6,
                **{
                    f"{w}_{p}_per_s": loaded.rate(w, p)
                    for w in ("first", "last")
                    for p in ("store", "copy")
                },
            }
            lo = out["load"]
            lo["first_ratio"] = lo["first_store_per_s"] / lo["first_copy_per_s"]
            lo["last_ratio"] = lo["last_store_per_s"] / lo["last_copy_per_s"]
            _say(
                f"load: {loaded.events:,} events in {loaded.wall_s:.1f} s (generation included; "
                f"append_batch {lo['store_events_per_s']:,.0f} events/s overall); "
                f"append_batch first 10% {lo['first_store_per_s']:,.0f}/s vs raw COPY "
                f"{lo['first_copy_per_s']:,.0f}/s ({lo['first_ratio']:.2f}); last 10% "
                f"{lo['last_store_per_s']:,.0f}/s vs {lo['last_copy_per_s']:,.0f}/s "
                f"({lo['last_ratio']:.2f})"
            )

            p = out["projection"] = await measure_projection(url, store, settings, loaded.events)
            out["storage"] = await _storage(store, loaded.events, members)
            _say(
                f"storage: {out['storage']['bytes_per_event']:,.0f} bytes per event (events "
                f"and indexes), {out['storage']['bytes_per_profile']:,.0f} per profile"
            )
            _say(
                f"profile rebuild: {p['events']:,} events, {p['events_per_s']:,.0f}/s vs bare "
                f"fold {p['bare_events_per_s']:,.0f}/s over the first "
                f"{min(p['events'], FOLD_SAMPLE):,} (ratio {p['ratio']:.2f})"
            )

            due = _shop.due_count(members)
            s = out["scan"] = await measure_scan(url, store, client, now, due)
            _say(
                f"inactivity scan: {s['found']:,} of {due:,} due found in {s['find_s']:.2f} s "
                f"(target <= {SCAN_TARGET_S} s at 1M; bare count {s['bare_count_s']:.3f} s); "
                f"whole scan {s['scan_s']:.1f} s, {s['started']:,} started, Temporal counts "
                f"{s['temporal_starts']}"
            )

            g = out["segments"] = await measure_refresh(store, settings)
            _say(
                f"segment refresh: {g['members']:,} members in {g['refresh_s']:.1f} s "
                f"({g['us_per_member']:.0f} us/member); longest page {g['longest_page_s']:.2f} "
                f"s; an event waited up to {g['projection_wait_max_s']:.2f} s to be projected"
            )

            j = out["analytics"] = await measure_analytics_projection(store, settings)
            _say(
                f"journey analytics projection: {j['events']:,} events in {j['seconds']:.1f} s "
                f"({j['events_per_s']:,.0f}/s; reports answer from it and the events after it)"
            )

            a = out["api"] = await measure_api(url, settings)
            _say(
                f"journey dashboard page p95 {a['dashboard_p95_ms']:.0f} ms, "
                f"/v1/journeys/{_shop.JOURNEY}/stats p95 {a['stats_p95_ms']:.0f} ms "
                f"({a['requests']['stats']} requests each; target <= {API_TARGET_MS:.0f} ms)"
                + (
                    f"; timed out after {REQUEST_TIMEOUT_S:.0f} s: {a['timed_out']}"
                    if any(a["timed_out"].values())
                    else ""
                )
            )

            triggers = min(TRIGGERS, max(1, members // 10))
            d = out["dispatcher"] = await measure_dispatcher(store, client, members, triggers)
            _say(
                f"dispatcher: {d['triggers_per_s']:.1f} triggers/s vs bare signal-with-start "
                f"{d['bare_per_s']:.1f}/s (ratio {d['ratio']:.2f}, {d['triggers']} triggers)"
            )

            out["memory_end_mb"] = _procs.snapshot(pgdata)
            _say(
                "memory (MB, start -> end): "
                + ", ".join(
                    f"{k} {_mb(out['memory_start_mb'][k])} -> {_mb(out['memory_end_mb'][k])}"
                    for k in out["memory_end_mb"]
                )
            )
        finally:
            await store.close()
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def _mb(v: float | None) -> str:
    return "?" if v is None else f"{v:,.0f}"


# ---------------------------------------------------------------------------- growth


@dataclass(frozen=True)
class Cost:
    label: str
    get: Callable[[dict[str, Any]], float]
    unit: str
    flat: bool
    """Per-member (or per-due-member, per-event) cost: should stay within `FLAT`."""
    over: Callable[[dict[str, Any]], bool] = lambda r: False
    """The figure is only a lower bound (a request timed out)."""


COSTS = [
    Cost("load, per member", lambda r: r["load"]["us_per_member"], "us", True),
    Cost("append_batch / raw COPY, last 10%", lambda r: r["load"]["last_ratio"], "", False),
    Cost("profile rebuild, per event", lambda r: r["projection"]["us_per_event"], "us", True),
    Cost("rebuild / bare fold", lambda r: r["projection"]["ratio"], "", False),
    Cost(
        "scan find, per due member",
        lambda r: r["scan"]["ms_per_due_member_find"],
        "ms",
        True,
    ),
    Cost(
        "scan with starts, per due member",
        lambda r: r["scan"]["ms_per_due_member_scan"],
        "ms",
        True,
    ),
    Cost(
        "analytics projection, per event",
        lambda r: 1e6 / r["analytics"]["events_per_s"] if r["analytics"]["events_per_s"] else 0,
        "us",
        True,
    ),
    Cost("segment refresh, per member", lambda r: r["segments"]["us_per_member"], "us", True),
    Cost(
        "projection held up by refresh",
        lambda r: r["segments"]["projection_wait_max_s"] * 1000,
        "ms",
        False,
    ),
    Cost(
        "dashboard journey page p95",
        lambda r: r["api"]["dashboard_p95_ms"],
        "ms",
        False,
        lambda r: r["api"]["timed_out"]["dashboard"] > 0,
    ),
    Cost(
        "/v1/journeys/…/stats p95",
        lambda r: r["api"]["stats_p95_ms"],
        "ms",
        False,
        lambda r: r["api"]["timed_out"]["stats"] > 0,
    ),
    # Per trigger, not per member; it moves with the Temporal server's own speed, which the
    # ratio to bare signal-with-start (next row) takes out.
    Cost(
        "dispatcher, per trigger", lambda r: 1000 / r["dispatcher"]["triggers_per_s"], "ms", False
    ),
    Cost("dispatcher / bare signal-with-start", lambda r: r["dispatcher"]["ratio"], "", False),
    Cost("PostgreSQL memory at end", lambda r: r["memory_end_mb"]["postgres"] or 0, "MB", False),
    Cost("bench process memory at end", lambda r: r["memory_end_mb"]["bench"] or 0, "MB", False),
]


def growth(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """Largest size over smallest, for every cost (None when a figure is only a bound)."""
    small, big = results[0], results[-1]
    out: dict[str, float | None] = {}
    for c in COSTS:
        a, b = c.get(small), c.get(big)
        known = a and not c.over(small) and not c.over(big)
        out[c.label] = round(b / a, 2) if known else None
    return out


def print_table(results: list[dict[str, Any]]) -> dict[str, float | None]:
    sizes = [r["members"] for r in results]
    ratios = growth(results)
    head = "".join(f"{f'{n:,} members':>18}" for n in sizes)
    print(f"\ncost growth ({sizes[-1]:,} over {sizes[0]:,} members)")
    print(f"  {'measure':40}{head}{'growth':>10}")
    for c in COSTS:
        cells = "".join(
            f"{('>' if c.over(r) else '') + f'{c.get(r):,.2f}':>15} {c.unit:<2}" for r in results
        )
        ratio = ratios[c.label]
        mark = ""
        if c.flat and ratio is not None:
            mark = "  flat" if ratio <= FLAT else f"  > {FLAT}x"
        shown = "n/a" if ratio is None else f"{ratio:.2f}x"
        print(f"  {c.label:40}{cells}{shown:>10}{mark}")
    return ratios


# ---------------------------------------------------------------------------- main


def _summary(results: list[dict[str, Any]], ratios: dict[str, float | None]) -> str:
    last = results[-1]
    flat = {c.label: ratios[c.label] for c in COSTS if c.flat} if ratios else {}
    flat = {k: v for k, v in flat.items() if v is not None}
    return result_line(
        "scale",
        last["scan"]["find_s"],
        "s",
        SCAN_TARGET_S,
        members=last["members"],
        sizes=[r["members"] for r in results],
        scan={
            "due": last["scan"]["due"],
            "found": last["scan"]["found"],
            "started": last["scan"]["started"],
            "temporal_starts": last["scan"]["temporal_starts"],
            "bare_count_s": round(last["scan"]["bare_count_s"], 3),
        },
        load_ratio_to_copy={
            "first": round(last["load"]["first_ratio"], 3),
            "last": round(last["load"]["last_ratio"], 3),
        },
        projection_ratio_to_bare_fold=round(last["projection"]["ratio"], 3),
        api_p95_ms={
            "dashboard": round(last["api"]["dashboard_p95_ms"], 1),
            "stats": round(last["api"]["stats_p95_ms"], 1),
        },
        api_timed_out=last["api"]["timed_out"],
        dispatcher_ratio_to_bare=round(last["dispatcher"]["ratio"], 3),
        segments_hold_up_s=round(last["segments"]["projection_wait_max_s"], 3),
        growth=ratios,
        growth_flat=all(v <= FLAT for v in flat.values()) if flat else None,
    )


def sizes_of(args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    if args.members:
        return [args.members]
    if args.quick:
        return [QUICK_REFERENCE, QUICK]
    return list(FULL)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK:,} members (with a {QUICK_REFERENCE:,}-member reference for growth)",
    )
    parser.add_argument("--members", type=int, default=0, help="one size")
    parser.add_argument("--sizes", default="", help="comma-separated sizes, e.g. 10000,20000")
    parser.add_argument("--database-url", default=None, help="an existing, empty database")
    parser.add_argument("--json-out", default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    sizes = sizes_of(args)
    if args.database_url and len(sizes) > 1:
        parser.error("--database-url takes one size (--members N): each size needs an empty store")
    print(
        f"scale bench: sizes {', '.join(f'{n:,}' for n in sizes)} members, about 20 events "
        "each, 1% due for win-back; figures beside limits of the same run"
    )
    results = []
    for n in sizes:
        results.append(asyncio.run(run_size(n, args.database_url)))
    ratios = print_table(results) if len(results) > 1 else {}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str))
    print(_summary(results, ratios))
