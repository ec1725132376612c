"""Helpers for dispatcher and scheduler tests on the Temporal dev server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.engine.runtime.worker import build_worker
from journeyman.event_store import NewEvent, PostgresEventStore

FAST = {
    "cart_recovery": {"quiet_period": 0.3, "coupon_delay": 0.3, "attribution_window": 1},
    "welcome": {"tips_after": 0.2, "incentive_after": 0.4, "attribution_window": 0.2},
    "winback": {"follow_up_delay": 0.3, "attribution_window": 0.3},
    "post_purchase_survey": {"survey_delay": 0.2, "attribution_window": 0.2},
}


def journeys(*names: str) -> dict[str, type]:
    from journeyman.engine.runtime.worker import registered_journeys

    found = registered_journeys()
    return {n: found[n] for n in names} if names else found


@contextlib.asynccontextmanager
async def worker_for(
    client: Any, store: PostgresEventStore, found: dict[str, type], settings: dict | None = None
) -> AsyncIterator[str]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(
        client, store, task_queue=task_queue, journeys=found, journey_settings=settings or FAST
    ):
        yield task_queue


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await asyncio.wait_for(task, 10)


async def append(
    store: PostgresEventStore,
    member: str,
    type: str,
    data: dict | None = None,
    *,
    occurred_at: dt.datetime | None = None,
) -> int:
    results = await store.append(
        f"member-{member}", [NewEvent(type, data or {}, occurred_at=occurred_at)]
    )
    return results[0].global_position


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def types_of(store: PostgresEventStore, member: str) -> list[str]:
    return [e.type for e in await store.read_stream(f"member-{member}")]


async def stream(store: PostgresEventStore, member: str) -> list[Any]:
    return await store.read_stream(f"member-{member}")
