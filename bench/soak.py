"""Soak: sustained ingestion over HTTP and cart journeys for N minutes, on the whole system as
separate processes (API, worker, dispatcher) with an embedded PostgreSQL, a Temporal dev
server and local SMTP and Twilio peers.

    python -m bench soak --minutes 10 [--members-per-second 1] [--views-per-member 6]

Every `--sample-every` seconds it prints ingestion throughput, messages delivered, journeys
finished, the dispatcher's lag (age of the oldest event it has not passed yet) and the RSS
of each process. At the end it checks that each process's RSS is flat after warm-up: the
mean of the last fifth of the samples within 10% of the mean of the first fifth after the
warm-up (the first third of the run). The limit is that 10%; the value is the largest
growth seen.

The processes are the same the fault suite runs (`tests/faults/rig.py` provides them).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

from bench.common import bench_database, result_line

RSS_LIMIT = 0.10
ROOT = Path(__file__).resolve().parent.parent


def _rig_module() -> Any:
    path = ROOT / "tests" / "faults" / "rig.py"
    spec = importlib.util.spec_from_file_location("journeyman_fault_rig", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="two minutes")
    parser.add_argument("--members-per-second", type=float, default=1.0)
    parser.add_argument("--views-per-member", type=int, default=6)
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    minutes = 2.0 if args.quick else args.minutes
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, minutes, args))


def _rss(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return float("nan")


async def _dispatcher_lag(pool: Any) -> float:
    row = await pool.fetchrow(
        "SELECT e.recorded_at FROM events e WHERE e.global_position > coalesce("
        "(SELECT max(position) FROM subscription_checkpoints WHERE name = 'journey-dispatcher'),"
        " 0) AND e.stream_id LIKE 'member-%' ORDER BY e.global_position LIMIT 1"
    )
    if row is None:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - row["recorded_at"]).total_seconds())


async def _run(url: str, minutes: float, args: argparse.Namespace) -> None:
    rig_mod = _rig_module()
    from journeyman.engine.client import make_event

    root = Path(tempfile.mkdtemp(prefix="journeyman-soak-"))
    timings = rig_mod.Timings(quiet_period=2.0, coupon_delay=4.0, attribution_window=2.0)
    samples: list[dict[str, Any]] = []
    acknowledged = 0
    members = 0
    errors = 0
    print(
        f"soak: {minutes:g} min, {args.members_per_second:g} new carts/s, "
        f"{args.views_per_member} page views each"
    )
    try:
        async with rig_mod.Rig(root / "rig", url, timings=timings) as rig:
            await rig.start_all()
            load = rig_mod.Load(rig, 0, tag="soak")
            started = time.monotonic()
            deadline = started + minutes * 60
            next_sample = started + args.sample_every
            last_acked, last_t = 0, started
            async with load.client() as jm:
                while time.monotonic() < deadline:
                    tick = time.monotonic()
                    n = max(1, round(args.members_per_second))
                    events: list[dict[str, Any]] = []
                    for _ in range(n):
                        m = rig_mod.Member(id=f"soak-{members}", cart="cart-1", holdout=False)
                        members += 1
                        evs = load._events_of(m)
                        views = [
                            make_event("page.viewed", {"id": m.id}, {"path": f"/p/{i}"})
                            for i in range(args.views_per_member)
                        ]
                        events += evs[:3] + views + evs[3:]
                    try:
                        result = await jm.send_batch(events)
                        acknowledged += sum(1 for o in result.results if o.status != "rejected")
                    except Exception:
                        errors += 1
                    now = time.monotonic()
                    if now >= next_sample:
                        rig.assert_alive()
                        sample = {
                            "t": round(now - started, 1),
                            "events_per_s": round((acknowledged - last_acked) / (now - last_t), 1),
                            "delivered": sum(rig.peer_deliveries().values()),
                            "dispatcher_lag_s": round(await _dispatcher_lag(rig.pool), 2),
                            "rss_mb": {
                                name: round(_rss(rig.pid(name)), 1)
                                for name in ("api", "worker", "dispatcher")
                            },
                        }
                        samples.append(sample)
                        print("  " + json.dumps(sample), flush=True)
                        last_acked, last_t = acknowledged, now
                        next_sample += args.sample_every
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            elapsed = time.monotonic() - started
            journeys_done = sum(1 for r in await rig.journey_runs() if r["status"] == "COMPLETED")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    warm = [s for s in samples if s["t"] >= elapsed / 3]
    fifth = max(1, len(warm) // 5)
    growth: dict[str, float] = {}
    for name in ("api", "worker", "dispatcher"):
        if len(warm) < 2:
            growth[name] = float("nan")
            continue
        first = mean(s["rss_mb"][name] for s in warm[:fifth])
        last = mean(s["rss_mb"][name] for s in warm[-fifth:])
        growth[name] = (last - first) / first
    worst = max((g for g in growth.values() if g == g), default=float("nan"))
    flat = all(abs(g) <= RSS_LIMIT for g in growth.values() if g == g) and len(warm) >= 2
    lags = [s["dispatcher_lag_s"] for s in samples]
    throughput = acknowledged / elapsed if elapsed else 0.0
    print(
        f"  {acknowledged:,} events in {elapsed:.0f} s = {throughput:,.1f} events/s; "
        f"{members:,} carts, {journeys_done:,} journeys finished; "
        f"dispatcher lag max {max(lags, default=0):.2f} s; request errors {errors}"
    )
    for name, g in growth.items():
        print(f"  RSS {name:<10} growth after warm-up {g:+.1%} (limit ±{RSS_LIMIT:.0%})")
    print(f"  RSS flat: {'yes' if flat else 'NO'}")
    print(
        result_line(
            "soak",
            worst * 100 if worst == worst else 0.0,
            "% RSS growth after warm-up (worst process)",
            RSS_LIMIT * 100,
            minutes=minutes,
            events_per_s=round(throughput, 1),
            events=acknowledged,
            journeys_finished=journeys_done,
            dispatcher_lag_s={"max": max(lags, default=0.0), "last": lags[-1] if lags else 0.0},
            rss_growth={k: round(v * 100, 2) for k, v in growth.items()},
            rss_flat=flat,
            request_errors=errors,
        )
    )
    if not flat:
        raise SystemExit(1)
