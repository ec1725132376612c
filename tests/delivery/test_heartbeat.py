"""`deliver` heartbeats while it runs, so a send lost with its worker is retried within the
heartbeat timeout rather than after the whole start-to-close timeout."""

from __future__ import annotations

import asyncio

from journeyman.engine.activities.heartbeat import with_heartbeats
from temporalio.testing import ActivityEnvironment


async def test_heartbeats_while_the_work_runs_and_stop_after() -> None:
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def slow_send() -> str:
        return await with_heartbeats(asyncio.sleep(0.35, result="sent"), every=0.1)

    assert await env.run(slow_send) == "sent"
    during = len(beats)
    assert during >= 3
    await asyncio.sleep(0.3)
    assert len(beats) == during  # no heartbeat after the work is done


async def test_outside_an_activity_it_only_awaits() -> None:
    assert await with_heartbeats(asyncio.sleep(0, result=7)) == 7
