"""`JOURNEYMAN_ANALYTICS_DATABASE_URL`: journey reports and the dashboard read through it.

The analytics URL names a second database (standing in for a read replica) that holds the
seeded journey history, through a role that can only read; the main database holds none of
it. The reports give the seeded numbers, so they were read there, and the role refuses a
write, so reading there never needs one."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from journeyman.engine.access.keys import create_key
from journeyman.engine.analytics.projector import JourneyStatsProjector
from journeyman.engine.api import create_app, dashboard, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.stack import EmbeddedPostgres
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr

from .conftest import CONVERTED, HOLDOUT, SENT, TREATMENT, seed

READER = "journeyman_analytics_reader"


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{role}@{host}", *parts[2:]))


@pytest.fixture
async def replica_url(pg_server: EmbeddedPostgres, template_database: str) -> AsyncIterator[str]:
    """A second migrated database with the seeded journeys projected, and the URL of a
    read-only role on it."""
    name = f"replica_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server.database_url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        await admin.execute(
            f"DO $$ BEGIN CREATE ROLE {READER} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        await admin.execute(f"ALTER ROLE {READER} SET default_transaction_read_only = on")
    finally:
        await admin.close()
    url = pg_server.database_url(name)
    primary = await PostgresEventStore.connect(url, min_size=1, max_size=4)
    try:
        await seed(primary)
        await JourneyStatsProjector(primary, Settings()).run_until_caught_up()
        await primary.pool.execute(
            f"GRANT USAGE ON SCHEMA public TO {READER}; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}"
        )
    finally:
        await primary.close()
    yield as_role(url, READER)
    admin = await asyncpg.connect(pg_server.database_url("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_reports_and_dashboard_read_through_the_analytics_database(
    store: PostgresEventStore, replica_url: str, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    reader = await asyncpg.connect(replica_url)
    try:  # the role reads, and cannot write
        assert await reader.fetchval("SELECT count(*) FROM journey_entries") == TREATMENT + HOLDOUT
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.execute("DELETE FROM journey_funnel_counts")
    finally:
        await reader.close()

    settings = Settings(
        secret_key=SecretStr("dash-test-secret-" + "z" * 32),
        data_dir=tmp_path,
        analytics_database_url=replica_url,
    )
    token, _ = await create_key(store.pool, ["admin"], name="test admin")
    app = create_app(settings, store, run_projector=False)
    async with (
        serve_in_background(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c,
    ):
        stats = (await c.get("/v1/journeys/cart_recovery/stats")).json()
        listed = {j["name"]: j for j in (await c.get("/v1/journeys")).json()}
        page = await c.get("/dashboard/journeys/cart_recovery")
        deliveries = await c.get("/dashboard/deliveries")
        monkeypatch.setattr(dashboard, "COUNT_WINDOW", 2)  # counts cover a recent window
        recent = await c.get("/dashboard/deliveries?journey=cart_recovery")
    t = stats["treatment"]
    assert (t["entered"], t["messaged"], t["converted"]) == (TREATMENT, SENT, CONVERTED)
    assert listed["cart_recovery"]["stats"]["total"]["entered"] == TREATMENT + HOLDOUT
    assert page.status_code == 200 and f"treatment ({TREATMENT} entries)" in page.text
    assert deliveries.status_code == 200 and "cart_reminder" in deliveries.text
    assert f"message.sent: {SENT}" in deliveries.text
    [line] = re.findall(r"In the last 2 message events: (.*?)</p>", recent.text, re.S)
    assert sum(int(n) for n in re.findall(r"message\w*: (\d+)", line)) == 2
    # the main database has none of it: the numbers can only have come from the replica
    assert await store.pool.fetchval("SELECT count(*) FROM events") == 0


async def test_reports_answer_503_while_the_projection_is_far_behind(dash, monkeypatch) -> None:
    from journeyman.engine.analytics import report as analytics

    monkeypatch.setattr(analytics, "MAX_UNPROJECTED", 10)  # the seeded history is not projected
    async with dash.client("read") as c:
        r = await c.get("/v1/journeys/cart_recovery/stats")
    assert r.status_code == 503
    assert "catching_up" in r.text and "more than 10 events behind" in r.text
