"""The dispatcher end to end: real store on the embedded PostgreSQL, the Temporal dev
server, a real worker running the built-in journeys with delays of fractions of a second."""

from __future__ import annotations

import datetime as dt

import pytest
from dispatch_testkit import (
    FAST,
    append,
    eventually,
    journeys,
    running,
    stream,
    types_of,
    worker_for,
)
from journeyman.engine.activities import instances
from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.event_store import START

pytestmark = pytest.mark.devserver


async def test_events_start_signal_and_end_journeys(temporal_dev, store) -> None:
    client = temporal_dev.client
    found = journeys("cart_recovery", "winback")
    settings = {**FAST, "cart_recovery": {**FAST["cart_recovery"], "quiet_period": 30}}
    async with worker_for(client, store, found, settings) as tq:
        d = Dispatcher(store, client, found, task_queue=tq, journey_settings=settings)
        async with running(d):
            await append(store, "m1", "cart.updated", {"cart_id": "c1", "items": ["a"]})
            await append(store, "m2", "page.viewed", {"url": "/"})  # in no journey
            await append(store, "m3", "order.placed", {"cart_id": "c9"})  # a late order
            await eventually(
                lambda: _has(store, "m1", "journey.entered"), what="cart journey entered"
            )
            await append(store, "m1", "order.placed", {"cart_id": "c1", "total": 9})
            await eventually(lambda: _has(store, "m1", "journey.exited"), what="cart exit")
            row = await eventually(
                lambda: _stopped(store, "journey/cart_recovery/m1/c1"), what="projection"
            )
    exited = next(e for e in await stream(store, "m1") if e.type == "journey.exited")
    assert exited.data["reason"] == "ordered" and exited.data["converted"] is True
    assert "message.sent" not in await types_of(store, "m1")  # the order came within 30 s
    assert row.entries == 1
    # The late order started nothing; the page view of a member in no journey was not
    # Temporal traffic.
    assert await instances.running_instances(store.pool, "m3", "cart_recovery") == []
    assert await store.pool.fetchval("SELECT count(*) FROM journey_instances") == 1
    assert d.stats["skipped"] >= 2 and d.stats["started"] == 1
    assert d.stats["not_found"] == 0


async def _has(store, member: str, type: str) -> bool:
    return type in await types_of(store, member)


async def _stopped(store, workflow_id: str):
    row = await instances.get_instance(store.pool, workflow_id)
    return row if row is not None and not row.running else None


async def test_restart_mid_stream_loses_and_duplicates_nothing(temporal_dev, store) -> None:
    client = temporal_dev.client
    found = journeys("cart_recovery")
    slow = {"cart_recovery": {"quiet_period": 120}}
    members = [f"r{i}" for i in range(24)]
    for m in members:
        await append(store, m, "cart.updated", {"cart_id": "c", "items": ["x"]})
    async with worker_for(client, store, found, slow) as tq:
        routed: list[str] = []

        def first(event, workflow_id, how) -> None:
            routed.append(workflow_id)
            if len(routed) == 7:
                a.stop()  # the process goes away mid-stream

        a = Dispatcher(
            store,
            client,
            found,
            task_queue=tq,
            journey_settings=slow,
            batch_size=5,
            on_routed=first,
        )
        await a.run()
        assert 5 <= a.stats["started"] < len(members)
        b = Dispatcher(store, client, found, task_queue=tq, journey_settings=slow, batch_size=5)
        await b.run(follow=False)
        assert a.stats["started"] + b.stats["started"] == len(members)
        # Force a full re-delivery (a checkpoint lost): every trigger arrives twice. The
        # instances remember the trigger each run was handed, so nothing reaches Temporal.
        await store.save_checkpoint(b.name, START)
        c = Dispatcher(store, client, found, task_queue=tq, journey_settings=slow)
        await c.run(follow=False)
        assert c.stats["started"] == 0 and c.stats["trigger_replayed"] == len(members)

        # The runs end; a re-delivery after that must not start them again either (the cart
        # journey allows re-entry, so only the remembered trigger stops a second run).
        # Each run has recorded its `journey.entered` (naming its trigger) before it ends.
        async def all_entered() -> bool:
            return all(["journey.entered" in await types_of(store, m) for m in members])

        await eventually(all_entered, what="every run's journey.entered")
        for m in members:
            await client.get_workflow_handle(f"journey/cart_recovery/{m}/c").terminate()
        await store.save_checkpoint(b.name, START)
        e = Dispatcher(store, client, found, task_queue=tq, journey_settings=slow)
        await e.run(follow=False)
        assert e.stats["started"] == 0 and e.stats["trigger_replayed"] == len(members)
        # A dispatcher that died after Temporal accepted a start but before it noted the
        # trigger: the run's own `journey.entered` names its trigger, which is enough.
        await store.pool.execute("DELETE FROM journey_instances")
        await store.save_checkpoint(b.name, START)
        g = Dispatcher(store, client, found, task_queue=tq, journey_settings=slow)
        await g.run(follow=False)
        assert g.stats["started"] == 0 and g.stats["trigger_replayed"] == len(members)
        # A new update of the same cart is a new trigger: it does reach the journey.
        await append(store, members[0], "cart.updated", {"cart_id": "c", "items": ["y"]})
        f = Dispatcher(store, client, found, task_queue=tq, journey_settings=slow)
        await f.run(follow=False)
        assert f.stats["started"] == 1
        await eventually(
            lambda: _entered_twice(store, members[0]), what="the new cart update entered"
        )
        await client.get_workflow_handle(f"journey/cart_recovery/{members[0]}/c").terminate()
    for m in members:
        assert (await types_of(store, m)).count("journey.entered") == (2 if m == members[0] else 1)


async def _entered_twice(store, member: str) -> bool:
    return (await types_of(store, member)).count("journey.entered") == 2


async def test_partitions_split_members_and_keep_own_checkpoints(temporal_dev, store) -> None:
    client = temporal_dev.client
    found = journeys("welcome")
    members = [f"p{i}" for i in range(16)]
    for m in members:
        await append(store, m, "member.registered")
    async with worker_for(client, store, found) as tq:
        ds = [
            Dispatcher(
                store,
                client,
                found,
                task_queue=tq,
                journey_settings=FAST,
                partition=p,
                partitions=2,
            )
            for p in (0, 1)
        ]
        for d in ds:
            await d.run(follow=False)
        for m in members:
            await eventually(lambda m=m: _has(store, m, "journey.exited"), what=f"{m} done")
    assert ds[0].stats["started"] > 0 and ds[1].stats["started"] > 0
    assert ds[0].stats["started"] + ds[1].stats["started"] == len(members)
    for p in (0, 1):
        assert await store.load_checkpoint(ds[p].name, p, 2) != START


async def test_stale_trigger_starts_nothing_and_reentry_rule_holds(temporal_dev, store) -> None:
    client = temporal_dev.client
    found = journeys("cart_recovery", "welcome")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    async with worker_for(client, store, found) as tq:
        d = Dispatcher(store, client, found, task_queue=tq, journey_settings=FAST)
        await append(store, "s1", "cart.updated", {"cart_id": "c", "items": [1]}, occurred_at=old)
        await append(store, "s2", "cart.updated", {"cart_id": "c", "items": []})  # emptied
        await append(store, "w1", "member.registered")
        await d.run(follow=False)
        assert d.stats["stale_trigger"] == 1 and d.stats["not_a_start"] == 1
        await eventually(lambda: _has(store, "w1", "journey.exited"), what="welcome done")
        await d.run(follow=False)  # folds journey.exited into journey_instances
        await append(store, "w1", "member.registered")  # welcome never re-enters
        await d.run(follow=False)
    assert d.stats["reentry_blocked"] == 1 and d.stats["started"] == 1
    assert (await types_of(store, "w1")).count("journey.entered") == 1
    assert "journey.entered" not in await types_of(store, "s1")
