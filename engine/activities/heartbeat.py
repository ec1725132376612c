"""Heartbeats for activities that may run for a while (a send to a slow provider).

Temporal notices a worker that died mid-activity only when a timeout passes. With
heartbeats every few seconds and a short heartbeat timeout, a send lost with its worker is
retried within seconds instead of after its whole start-to-close timeout; the delivery claim
makes that retry safe (it looks the outcome up before sending anything again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

HEARTBEAT_EVERY = 2.0
"""Seconds between heartbeats; the heartbeat timeout callers set must be several times this."""


async def with_heartbeats(work: Awaitable[T], every: float = HEARTBEAT_EVERY) -> T:
    """Await `work`, heartbeating every `every` seconds while it runs (only inside an
    activity; elsewhere it simply awaits)."""
    if not activity.in_activity():
        return await work

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    beating = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beating.cancel()
