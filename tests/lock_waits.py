"""Waiting, in a test, until a concurrent transaction is blocked on a lock."""

from __future__ import annotations

import asyncio

import asyncpg


async def until_a_session_waits_on_a_lock(pool: asyncpg.Pool, what: str) -> None:
    """Return once some session waits for a lock (`pg_locks` has an ungranted one); fail
    with `what` after about 10 s."""
    for _ in range(1000):
        if await pool.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)
