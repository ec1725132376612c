"""What routing costs the database, counted: one look-up per batch, at most two statements
per trigger, none per event that routes nowhere.

Every statement the dispatcher's pool sends is counted by asyncpg's query logger. The pool
has one connection, warmed before counting, so each statement is one round trip (prepared
statements are cached; the reset when a connection goes back to the pool is counted too).
"""

from __future__ import annotations

import ast
import asyncio
import datetime as dt
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from dispatch_testkit import append, journeys
from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.event_store import PostgresEventStore, RecordedEvent
from journeyman.event_store.postgres import _init_connection

ROOT = Path(__file__).resolve().parents[2]


async def _counting_store(url: str, counter: Counter[str]) -> PostgresEventStore:
    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection(conn)
        conn.add_query_logger(lambda q: counter.update([q.query.split()[0].upper()]))

    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, init=init)
    return PostgresEventStore(pool, owns_pool=True)


async def _events(store: PostgresEventStore, members: list[str]) -> list[RecordedEvent]:
    found = [e for m in members for e in await store.read_stream(f"member-{m}")]
    return sorted(found, key=lambda e: e.global_position)


async def _routed(d: Dispatcher, events: list[RecordedEvent], counter: Counter[str]) -> int:
    """Statements one batch cost."""
    await asyncio.sleep(0.05)  # the logger reports through the event loop
    counter.clear()
    await d.handle(events)
    await asyncio.sleep(0.05)
    return sum(counter.values())


@pytest.mark.devserver
async def test_a_batch_costs_one_look_up_and_at_most_two_statements_per_trigger(
    temporal_dev, store, database_url
) -> None:
    client = temporal_dev.client
    counter: Counter[str] = Counter()
    counted = await _counting_store(database_url, counter)
    run = uuid.uuid4().hex[:6]
    d = Dispatcher(counted, client, journeys("cart_recovery"), task_queue=f"rt-{run}")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    started: list[str] = []
    try:
        # Warm the one connection with every statement shape used below.
        warm = f"w{run}"
        await append(store, warm, "cart.updated", {"cart_id": "c", "items": [1]})
        await append(store, warm, "order.placed", {"cart_id": "zz"})
        await _routed(d, await _events(store, [warm]), counter)
        started.append(f"journey/cart_recovery/{warm}/c")

        # Events that route nowhere (late orders, stale carts of members in no journey):
        # the batch's one look-up and the connection's reset, however many there are.
        costs = []
        for n in (5, 40):
            quiet = [f"q{run}-{n}-{i}" for i in range(n)]
            for i, m in enumerate(quiet):
                if i % 2:
                    await append(store, m, "order.placed", {"cart_id": "late"})
                else:
                    await append(
                        store, m, "cart.updated", {"cart_id": "c", "items": [1]}, occurred_at=old
                    )
            costs.append(await _routed(d, await _events(store, quiet), counter))
        assert costs == [2, 2], counter
        assert d.stats["stale_trigger"] == 20 + 3 and d.stats["started"] == 1

        # Triggers that start runs, each followed by an order for the same cart (which must
        # reach the run the trigger has just begun), among late orders of other members.
        shoppers = [f"s{run}-{i}" for i in range(8)]
        late = [f"l{run}-{i}" for i in range(8)]
        for m in shoppers:
            await append(store, m, "cart.updated", {"cart_id": "c", "items": [1]})
            await append(store, m, "page.viewed", {"url": "/"})
            await append(store, m, "order.placed", {"cart_id": "c", "total": 5})
        for m in late:
            await append(store, m, "order.placed", {"cart_id": "late"})
        signalled = d.stats["signalled"]
        cost = await _routed(d, await _events(store, shoppers + late), counter)
        started += [f"journey/cart_recovery/{m}/c" for m in shoppers]
        assert d.stats["started"] == 1 + 8
        assert d.stats["signalled"] - signalled == 8  # every order reached its new run
        assert cost <= 2 + 2 * len(shoppers), counter
        assert cost == 2 + len(shoppers), counter  # the start and its trigger, together

        # A run that ended without the projection hearing of it: the trigger's signal finds
        # nothing, the row is cleared, a new run starts. Still at most two statements.
        for m in shoppers[:2]:
            await client.get_workflow_handle(f"journey/cart_recovery/{m}/c").terminate()
            await append(store, m, "cart.updated", {"cart_id": "c", "items": [2]})
        fresh = [e for e in await _events(store, shoppers[:2]) if e.data.get("items") == [2]]
        cost = await _routed(d, fresh, counter)
        assert d.stats["not_found"] == 2 and d.stats["started"] == 1 + 8 + 2
        assert cost <= 2 + 2 * 2, counter
    finally:
        for workflow_id in started:
            try:
                await client.get_workflow_handle(workflow_id).terminate()
            except Exception:
                pass
        await counted.close()


def _private_uses(path: Path) -> list[str]:
    """`x._name` on anything but `self`, and `getattr(x, "_name")`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append(f"{path.name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_dispatch_uses_no_private_attribute_of_the_temporal_sdk() -> None:
    paths = [
        ROOT / "engine" / "routing" / "dispatcher.py",
        ROOT / "engine" / "activities" / "instances.py",
        ROOT / "engine" / "activities" / "journey_activities.py",
    ]
    assert [u for p in paths for u in _private_uses(p)] == []
