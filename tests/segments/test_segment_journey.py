"""End to end: a segment entry produced by the profile projection starts the journey that
declared `trigger=segment_entry(...)`, through the dispatcher on the Temporal dev server;
leaving the segment ends it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from journeyman.engine.activities import instances
from journeyman.engine.core.settings import Settings
from journeyman.engine.profiles import ProfileProjector
from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.engine.runtime.worker import build_worker
from journeyman.event_store import PostgresEventStore
from journeyman.workflows.builtin_plugin import VIP

from .helpers import order
from .vip_journey import VipThanks

pytestmark = pytest.mark.devserver

WORKFLOW_ID = "journey/vip_thanks_test/v1"


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
    return value


async def test_entering_a_segment_starts_the_journey_and_leaving_ends_it(
    temporal_dev, store: PostgresEventStore, settings: Settings
) -> None:
    client = temporal_dev.client
    found = {"vip_thanks_test": VipThanks}
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    projector = ProfileProjector(store, settings, segments=[VIP])
    now = dt.datetime.now(dt.UTC)

    async def journey_event(type_: str) -> Any:
        stream = await store.read_stream("member-v1")
        return next((e for e in stream if e.type == type_), None)

    async with build_worker(client, store, task_queue=task_queue, journeys=found):
        dispatcher = Dispatcher(store, client, found, task_queue=task_queue)
        task = asyncio.create_task(dispatcher.run())
        try:
            for i in range(4):
                await order(store, "v1", 150, now - dt.timedelta(hours=5 - i))
            await projector.run_until_caught_up()
            await asyncio.sleep(0.5)
            assert await journey_event("journey.entered") is None  # four orders: no VIP yet
            await order(store, "v1", 150, now - dt.timedelta(hours=1))
            await projector.run_until_caught_up()
            entered = await eventually(
                lambda: journey_event("journey.entered"), "the VIP journey to start"
            )
            trigger = await journey_event("segment.entered")
            assert trigger is not None and trigger.data == {"segment": "vip"}
            assert entered.data["journey"] == "vip_thanks_test"
            assert entered.data["workflow_id"] == WORKFLOW_ID

            # A refund takes the member below 500: they leave the segment, the journey ends.
            await order(store, "v1", 400, now, type="order.refunded")
            await projector.run_until_caught_up()
            exited = await eventually(
                lambda: journey_event("journey.exited"), "the VIP journey to end"
            )
            assert exited.data["reason"] == "not_vip"
        finally:
            dispatcher.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
    row = await instances.get_instance(store.pool, WORKFLOW_ID)
    assert row is not None and row.entries == 1
    assert dispatcher.stats["started"] == 1
