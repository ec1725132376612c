"""A long transaction anywhere on the PostgreSQL server holds back every subscriber of the
store: its age is a metric and a health warning."""

from __future__ import annotations

import asyncio
import re

import asyncpg
from journeyman.engine.core import metrics
from journeyman.event_store import NewEvent

from .conftest import Api


async def _oldest_seconds(api: Api) -> float:
    metrics.register_store_metrics().snapshot.at = 0.0  # force a fresh read
    async with api.client(None) as c:
        text = (await c.get("/metrics")).text
    m = re.search(r"^journeyman_oldest_transaction_seconds ([0-9.e+-]+)$", text, re.M)
    assert m, "metric missing"
    return float(m.group(1))


async def test_oldest_transaction_age_is_a_metric_and_a_health_warning(
    api: Api, database_url: str
) -> None:
    api.settings.long_transaction_warn_seconds = 1.0
    async with api.client(None) as c:
        assert (await c.get("/healthz")).json()["warnings"] == {}
    assert await _oldest_seconds(api) < 1.0

    conn = await asyncpg.connect(database_url, server_settings={"application_name": "long-one"})
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.fetchval("SELECT pg_current_xact_id()")  # holds a transaction id
        head_before = await api.store.head()
        await asyncio.sleep(1.3)
        assert await _oldest_seconds(api) >= 1.3
        async with api.client(None) as c:
            r = await c.get("/healthz")
        assert r.status_code == 200
        warning = r.json()["warnings"]["long_transaction"]
        assert (
            "long-one" in warning
            and f"pid {await conn.fetchval('SELECT pg_backend_pid()')}" in warning
        )
        # While it is open, readers cannot move past it.
        await api.store.append("member-x", [NewEvent("page.viewed")])
        assert (await api.store.read_all(head_before))[0] == []
        await tx.rollback()
    finally:
        await conn.close()
    async with api.client(None) as c:
        assert (await c.get("/healthz")).json()["warnings"] == {}
    assert await _oldest_seconds(api) < 1.0


async def test_a_part_health_carries_the_warning(store, database_url: str) -> None:
    """The dispatcher's `/healthz` (a `Health`) warns too, and stays healthy."""
    health = metrics.Health("dispatcher", status="ok")
    await metrics.watch_long_transactions(store.pool, health, 0.5, once=True)
    assert health.report()[1]["warnings"] == {}
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.fetchval("SELECT pg_current_xact_id()")
            await asyncio.sleep(0.7)
            await metrics.watch_long_transactions(store.pool, health, 0.5, once=True)
            ok, report = health.report()
            assert (
                ok
                and "every subscriber of the store waits"
                in (report["warnings"]["long_transaction"])
            )
    finally:
        await conn.close()
    await metrics.watch_long_transactions(store.pool, health, 0.5, once=True)
    assert health.report()[1]["warnings"] == {}
