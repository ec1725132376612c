"""Cart-recovery journeys completed per second, beside a bare Temporal workflow doing the same
activities and timers on the same dev server in the same run (the limit); and the latency
from an event's append acknowledgement to Temporal accepting the dispatcher's
signal-with-start for it.

    python -m bench journeys [--quick] [--journeys N] [--database-url URL]

Delays are compressed through journey settings (seconds), not special code.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from bench.common import bench_database, percentile, result_line

QUIET = 0.3
COUPON = 0.3
WINDOW = 0.1
CART_SETTINGS = {
    "quiet_period": QUIET,
    "coupon_delay": COUPON,
    "attribution_window": WINDOW,
    "freshness": 3600,
}


@activity.defn(name="bare_step")
async def bare_step(n: int) -> int:
    return n


@workflow.defn(name="bare_cart")
class BareCart:
    """The limit: the cart journey's 5 activities and 3 timers, with nothing behind them."""

    @workflow.run
    async def run(self, member_id: str) -> int:
        opts = {
            "start_to_close_timeout": dt.timedelta(seconds=30),
            "retry_policy": RetryPolicy(maximum_attempts=3),
        }
        total = await workflow.execute_activity(bare_step, 1, **opts)  # entered
        total += await workflow.execute_activity(bare_step, 2, **opts)  # profile
        await workflow.sleep(QUIET)
        total += await workflow.execute_activity(bare_step, 3, **opts)  # reminder
        await workflow.sleep(COUPON)
        total += await workflow.execute_activity(bare_step, 4, **opts)  # coupon
        await workflow.sleep(WINDOW)
        total += await workflow.execute_activity(bare_step, 5, **opts)  # exited
        return total


async def _bare(client, n: int) -> float:
    from temporalio.worker import Worker

    tq = f"bare-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=tq, workflows=[BareCart], activities=[bare_step]):
        t0 = time.perf_counter()
        handles = await asyncio.gather(
            *(
                client.start_workflow(BareCart.run, f"m{i}", id=f"bare-{tq}-{i}", task_queue=tq)
                for i in range(n)
            )
        )
        await asyncio.gather(*(h.result() for h in handles))
        return n / (time.perf_counter() - t0)


async def _journeys(client, store, n: int) -> float:
    from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput, JourneyResult
    from journeyman.engine.runtime.worker import build_worker
    from journeyman.workflows.cart_recovery import CartRecovery

    spec = CartRecovery.__journey__
    tq = f"journeys-{uuid.uuid4().hex[:6]}"
    settings = spec.resolve_settings(CART_SETTINGS).model_dump(mode="json")
    run = uuid.uuid4().hex[:6]
    async with build_worker(client, store, task_queue=tq, journeys={"cart_recovery": CartRecovery}):
        t0 = time.perf_counter()

        async def one(i: int):
            member = f"{run}-{i}"
            trigger = JourneyEvent(
                position=i + 1, type="cart.updated", data={"cart_id": "c", "items": [1]}
            )
            return await client.start_workflow(
                spec.name,
                JourneyInput(member_id=member, key="c", trigger=trigger, settings=settings),
                id=spec.workflow_id(member, "c"),
                task_queue=tq,
                start_signal=EVENT_SIGNAL,
                start_signal_args=[trigger],
                result_type=JourneyResult,
            )

        handles = await asyncio.gather(*(one(i) for i in range(n)))
        results = await asyncio.gather(*(h.result() for h in handles))
        elapsed = time.perf_counter() - t0
    sent = sum(len(r.sends) + len(r.withheld) for r in results)
    assert sent == 2 * n, f"expected {2 * n} sends (or withheld), got {sent}"
    return n / elapsed


async def _latency(client, store, n: int) -> tuple[float, float]:
    from journeyman.engine.routing.dispatcher import Dispatcher
    from journeyman.engine.runtime.worker import build_worker
    from journeyman.event_store import NewEvent
    from journeyman.workflows.cart_recovery import CartRecovery

    found = {"cart_recovery": CartRecovery}
    tq = f"latency-{uuid.uuid4().hex[:6]}"
    acked: dict[str, float] = {}
    routed: dict[str, float] = {}

    def on_routed(event, workflow_id, how) -> None:
        routed.setdefault(event.event_id, time.perf_counter())

    settings = {"cart_recovery": {**CART_SETTINGS, "quiet_period": 60}}
    d = Dispatcher(
        store,
        client,
        found,
        task_queue=tq,
        journey_settings=settings,
        on_routed=on_routed,
        name=f"bench-{tq}",
    )
    async with build_worker(client, store, task_queue=tq, journeys=found):
        task = asyncio.create_task(d.run())
        run = uuid.uuid4().hex[:6]
        for i in range(n):
            event_id = f"lat-{run}-{i}"
            await store.append(
                f"member-lat{run}{i}",
                [NewEvent("cart.updated", {"cart_id": "c", "items": [1]}, event_id=event_id)],
            )
            acked[event_id] = time.perf_counter()
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 30
        while len(routed) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        d.stop()
        await task
        for i in range(n):
            await client.get_workflow_handle(
                CartRecovery.__journey__.workflow_id(f"lat{run}{i}", "c")
            ).terminate()
    lat = [(routed[k] - acked[k]) * 1000 for k in acked if k in routed]
    return percentile(lat, 50), percentile(lat, 99)


async def _run(url: str, n: int, latency_n: int, rounds: int) -> None:
    from journeyman.engine.runtime.stack import temporal_cli
    from journeyman.event_store import PostgresEventStore
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    store = await PostgresEventStore.connect(url, min_size=2, max_size=20)
    try:
        client = env.client
        print(
            f"cart-recovery journeys on the Temporal dev server ({n} journeys, delays "
            f"{QUIET}s/{COUPON}s/{WINDOW}s, 5 activities and 3 timers each)"
        )
        # Both paths warm up, then take turns in rounds so a busy moment on the machine (or
        # a server whose history has grown) hits them alike; each one's best round counts.
        await _bare(client, min(n, 20))
        await _journeys(client, store, min(n, 20))
        bares, rates = [], []
        for r in range(rounds):
            bares.append(await _bare(client, n))
            rates.append(await _journeys(client, store, n))
            print(
                f"  round {r + 1}/{rounds}: bare {bares[-1]:.1f} workflows/s, "
                f"journeys {rates[-1]:.1f} journeys/s"
            )
        bare, rate = max(bares), max(rates)
        print(f"  bare workflow, same activities and timers {bare:>8.1f} workflows/s  (limit)")
        print(f"  cart-recovery journeys completed          {rate:>8.1f} journeys/s")
        print(f"  ratio {rate / bare:.2f} (target >= 0.8)")
        p50, p99 = await _latency(client, store, latency_n)
        print(
            f"  append ack -> signal-with-start accepted  p50 {p50:.1f} ms  p99 {p99:.1f} ms "
            f"({latency_n} events through the dispatcher)"
        )
        print(
            result_line(
                "journeys",
                rate,
                "journeys/s",
                bare,
                journeys=n,
                ingest_to_signal_ms={"p50": round(p50, 1), "p99": round(p99, 1)},
            )
        )
    finally:
        await store.close()
        await env.shutdown()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench journeys")
    parser.add_argument("--quick", action="store_true", help="fewer journeys")
    parser.add_argument("--journeys", type=int, default=0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    n = args.journeys or (60 if args.quick else 200)
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, n, 50 if args.quick else 200, 2 if args.quick else 3))
