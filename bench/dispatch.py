"""Dispatcher throughput: trigger events routed per second, beside bare signal-with-start
calls to the same Temporal server in the same run (the limit).

Each member gets a late `order.placed` (it routes nowhere: the member is in no journey), a
`cart.updated` older than the cart journey's freshness window (it starts nothing) and a
fresh `cart.updated` (it starts a cart journey). The dispatcher catches up over exactly
those events (its checkpoint is set to the store's head before they are appended); the
limit makes the same number of signal-with-start calls, with the same payloads and the
same concurrency, straight to Temporal. No worker polls either task queue, so both measure
what it costs to hand runs to Temporal, not to run them. Every database statement the
dispatcher's pool sends is counted (reading events and saving checkpoints included).

    python -m bench dispatch [--quick] [--triggers N] [--database-url URL] [--temporal HOST:PORT]

`measure_dispatch(url, temporal_target)` is the importable form (the database at `url`
must be migrated; its other events are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from typing import Any

from bench.common import bench_database, result_line

CART = "cart_recovery"


async def _counting_store(url: str, counter: Counter[str]) -> Any:
    """A store whose every statement on the wire is counted (asyncpg's query logger)."""
    import asyncpg
    from journeyman.event_store import PostgresEventStore
    from journeyman.event_store.postgres import _init_connection

    def log(query: Any) -> None:
        counter["statements"] += 1

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        conn.add_query_logger(log)

    pool = await asyncpg.create_pool(url, min_size=2, max_size=12, init=init)
    return PostgresEventStore(pool, owns_pool=True)


async def _seed(store: Any, members: list[str], now: dt.datetime) -> None:
    from journeyman.event_store import ANY, NewEvent

    stale = now - dt.timedelta(hours=3)
    for i in range(0, len(members), 500):
        items = []
        for m in members[i : i + 500]:
            events = [
                NewEvent("order.placed", {"cart_id": "late", "total": 1}, occurred_at=now),
                NewEvent("cart.updated", {"cart_id": "old", "items": [1]}, occurred_at=stale),
                NewEvent("cart.updated", {"cart_id": "c", "items": [1]}, occurred_at=now),
            ]
            items.append((f"member-{m}", events, ANY))
        await store.append_batch(items)


async def _bare(client: Any, members: list[str], concurrency: int) -> tuple[float, list[str]]:
    """The limit: one signal-with-start per trigger, nothing else. Returns the seconds taken."""
    from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput
    from journeyman.workflows.cart_recovery import CartRecovery

    spec = CartRecovery.__journey__
    settings = spec.resolve_settings().model_dump(mode="json")
    tq = f"bench-bare-{uuid.uuid4().hex[:6]}"
    sem = asyncio.Semaphore(concurrency)
    ids: list[str] = []

    async def one(i: int, member: str) -> None:
        trigger = JourneyEvent(
            position=i + 1,
            type="cart.updated",
            data={"cart_id": "c", "items": [1]},
            event_id=str(uuid.uuid4()),
            stream_id=f"member-{member}",
            occurred_at=dt.datetime.now(dt.UTC),
        )
        workflow_id = f"bare/{spec.workflow_id(member, 'c')}"
        async with sem:
            await client.start_workflow(
                spec.name,
                JourneyInput(member_id=member, key="c", trigger=trigger, settings=settings),
                id=workflow_id,
                task_queue=tq,
                id_reuse_policy=spec.id_reuse_policy(),
                start_signal=EVENT_SIGNAL,
                start_signal_args=[trigger],
            )
        ids.append(workflow_id)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, m) for i, m in enumerate(members)))
    return time.perf_counter() - t0, ids


async def _dispatch(
    url: str, client: Any, members: list[str], concurrency: int, batch_size: int
) -> dict[str, Any]:
    from journeyman.engine.routing.dispatcher import Dispatcher
    from journeyman.workflows.cart_recovery import CartRecovery

    counter: Counter[str] = Counter()
    store = await _counting_store(url, counter)
    try:
        name = f"bench-dispatch-{uuid.uuid4().hex[:8]}"
        await store.save_checkpoint(name, await store.head())
        await _seed(store, members, dt.datetime.now(dt.UTC))
        d = Dispatcher(
            store,
            client,
            {CART: CartRecovery},
            task_queue=f"bench-dispatch-{uuid.uuid4().hex[:6]}",
            name=name,
            batch_size=batch_size,
            concurrency=concurrency,
        )
        counter.clear()
        t0 = time.perf_counter()
        await d.run(follow=False)
        elapsed = time.perf_counter() - t0
        statements = counter["statements"]
    finally:
        await store.close()
    started = d.stats["started"]
    assert started == len(members), f"expected {len(members)} starts, got {dict(d.stats)}"
    return {
        "seconds": elapsed,
        "statements": statements,
        "stats": dict(d.stats),
        "ids": [CartRecovery.__journey__.workflow_id(m, "c") for m in members],
    }


async def _terminate(client: Any, ids: list[str], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with sem:
            try:
                await client.get_workflow_handle(workflow_id).terminate(reason="bench done")
            except Exception:  # already gone: nothing to clean
                pass

    await asyncio.gather(*(one(i) for i in ids))


async def measure_dispatch(
    url: str,
    temporal_target: str,
    *,
    triggers: int = 2000,
    rounds: int = 4,
    concurrency: int = 32,
    batch_size: int = 500,
    namespace: str = "default",
    cleanup: bool = True,
) -> dict[str, Any]:
    """Dispatcher triggers/s beside bare signal-with-start/s on the same Temporal server.

    `url`: a migrated Journeyman database; `temporal_target`: `host:port` of a Temporal
    frontend. The triggers are split into `rounds`; each round times the limit, then the
    dispatcher, on fresh member ids, so a busy moment on the machine hits both alike. The
    runs they start are terminated afterwards unless `cleanup` is off.
    """
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    client = await Client.connect(
        temporal_target, namespace=namespace, data_converter=pydantic_data_converter
    )
    run = uuid.uuid4().hex[:6]
    _, ids = await _bare(client, [f"bw{run}-{i}" for i in range(min(50, triggers))], concurrency)
    rounds = max(1, min(rounds, triggers))
    bare_s = dispatch_s = 0.0
    statements = 0
    stats: Counter[str] = Counter()
    for r in range(rounds):
        n = triggers // rounds + (1 if r < triggers % rounds else 0)
        seconds, bare_ids = await _bare(client, [f"b{run}-{r}-{i}" for i in range(n)], concurrency)
        got = await _dispatch(
            url, client, [f"d{run}-{r}-{i}" for i in range(n)], concurrency, batch_size
        )
        bare_s += seconds
        dispatch_s += got["seconds"]
        statements += got["statements"]
        stats.update(got["stats"])
        ids += bare_ids + got["ids"]
    if cleanup:
        await _terminate(client, ids, concurrency)
    rate, bare_rate = triggers / dispatch_s, triggers / bare_s
    return {
        "triggers": triggers,
        "events": 3 * triggers,
        "rounds": rounds,
        "dispatcher_triggers_per_s": round(rate, 1),
        "bare_signal_with_start_per_s": round(bare_rate, 1),
        "ratio": round(rate / bare_rate, 3),
        "dispatcher_seconds": round(dispatch_s, 2),
        "db_statements": statements,
        "db_statements_per_trigger": round(statements / triggers, 2),
        "stats": dict(stats),
    }


async def measure_catch_up(
    url: str, *, members: int = 10_000, events_per_member: int = 20, batch_size: int = 500
) -> dict[str, Any]:
    """Catch-up over events that route nowhere (late orders and stale carts of members in no
    journey), beside a bare read of the same events through the same subscription, with a
    checkpoint saved per batch (the limit). No Temporal is involved: nothing is started."""
    from journeyman.engine.routing.dispatcher import Dispatcher
    from journeyman.event_store import ANY, NewEvent
    from journeyman.workflows.cart_recovery import CartRecovery

    counter: Counter[str] = Counter()
    store = await _counting_store(url, counter)
    try:
        run = uuid.uuid4().hex[:6]
        d = Dispatcher(store, None, {CART: CartRecovery}, name=f"bench-catch-up-{run}")  # type: ignore[arg-type]
        bare = f"bench-bare-read-{run}"
        head = await store.head()
        await store.save_checkpoint(d.name, head)
        await store.save_checkpoint(bare, head)
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        for i in range(0, members, 200):
            items = []
            for m in range(i, min(i + 200, members)):
                events = [
                    NewEvent("order.placed", {"cart_id": "late"})
                    if k % 2
                    else NewEvent("cart.updated", {"cart_id": "c", "items": [k]}, occurred_at=stale)
                    for k in range(events_per_member)
                ]
                items.append((f"member-c{run}-{m}", events, ANY))
            await store.append_batch(items)
        t0 = time.perf_counter()
        sub = store.subscribe(
            bare,
            types=d.types,
            category="member",
            batch_size=batch_size,
            auto_checkpoint=False,
            follow=False,
        )
        read = 0
        async for events, cursor in sub.batches():
            read += len(events)
            await sub.save_checkpoint(cursor)
        bare_s = time.perf_counter() - t0
        counter.clear()
        t0 = time.perf_counter()
        await d.run(follow=False)
        dispatch_s = time.perf_counter() - t0
        statements = counter["statements"]
    finally:
        await store.close()
    return {
        "events": read,
        "dispatcher_seconds": round(dispatch_s, 2),
        "bare_read_seconds": round(bare_s, 2),
        "ratio": round(bare_s / dispatch_s, 3),
        "db_statements": statements,
        "stats": dict(d.stats),
    }


async def _run(url: str, temporal: str | None, triggers: int) -> None:
    from journeyman.engine.runtime.stack import temporal_cli
    from temporalio.testing import WorkflowEnvironment

    env = None
    if temporal is None:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            dev_server_extra_args=["--log-level", "error"],
        )
        temporal = env.client.service_client.config.target_host
    try:
        print(
            f"dispatcher catch-up over {triggers} members x (late order, stale cart, fresh "
            f"cart) on {temporal}"
        )
        r = await measure_dispatch(url, temporal, triggers=triggers)
    finally:
        if env is not None:
            await env.shutdown()
    print(f"  bare signal-with-start       {r['bare_signal_with_start_per_s']:>8.1f} /s  (limit)")
    print(f"  dispatcher triggers started  {r['dispatcher_triggers_per_s']:>8.1f} /s")
    print(f"  ratio {r['ratio']:.2f}")
    print(
        f"  database statements {r['db_statements']} for {r['events']} events "
        f"({r['db_statements_per_trigger']:.2f} per trigger, reads and checkpoints included)"
    )
    print(
        result_line(
            "dispatch",
            r["dispatcher_triggers_per_s"],
            "triggers/s",
            r["bare_signal_with_start_per_s"],
            triggers=triggers,
            db_statements=r["db_statements"],
        )
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench dispatch")
    parser.add_argument("--quick", action="store_true", help="fewer triggers")
    parser.add_argument("--triggers", type=int, default=0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--temporal", default=None, help="host:port (default: a dev server)")
    parser.add_argument(
        "--catch-up",
        type=int,
        default=0,
        metavar="MEMBERS",
        help="instead: catch-up over MEMBERS x 20 events that route nowhere",
    )
    args = parser.parse_args(argv)
    if args.catch_up:
        with bench_database(args.database_url) as url:
            r = asyncio.run(measure_catch_up(url, members=args.catch_up))
        print(
            f"catch-up over {r['events']} events that route nowhere: dispatcher "
            f"{r['dispatcher_seconds']} s, bare read of the same batches "
            f"{r['bare_read_seconds']} s (limit), {r['db_statements']} statements"
        )
        print(
            result_line(
                "dispatch-catch-up",
                r["events"] / r["dispatcher_seconds"],
                "events/s",
                r["events"] / r["bare_read_seconds"],
                db_statements=r["db_statements"],
            )
        )
        return
    n = args.triggers or (500 if args.quick else 2000)
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, args.temporal, n))
