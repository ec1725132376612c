"""`journeyman projections rebuild analytics`: the journey report tables are rebuilt from the
store alone, to the same figures, whatever was in them before."""

from __future__ import annotations

from pathlib import Path

from journeyman.engine.analytics.projector import JourneyStatsProjector
from journeyman.event_store import PostgresEventStore

from tests.ingestion.test_import import _cli

from .conftest import SENT, TREATMENT, seed

TABLES = ("journey_entries", "journey_deliveries", "journey_conversions", "journey_funnel_counts")


async def _snapshot(store: PostgresEventStore) -> dict[str, list]:
    async with store.pool.acquire() as c:
        return {t: sorted(map(tuple, await c.fetch(f"SELECT * FROM {t}"))) for t in TABLES}


async def test_rebuild_analytics_restores_the_same_tables(
    store: PostgresEventStore, database_url: str, tmp_path: Path
) -> None:
    await seed(store)
    await JourneyStatsProjector(store).run_until_caught_up()
    before = await _snapshot(store)
    assert len(before["journey_deliveries"]) == SENT and before["journey_funnel_counts"]
    async with store.pool.acquire() as c:  # damage the projection
        await c.execute("DELETE FROM journey_entries WHERE sent > 0")
        await c.execute("UPDATE journey_funnel_counts SET entered = entered + 1000")

    code, out, err = await _cli(database_url, tmp_path, "projections", "rebuild", "analytics")

    assert code == 0, err
    assert "journey analytics rebuilt from" in out
    assert await _snapshot(store) == before
    assert sum(1 for e in before["journey_entries"]) >= TREATMENT


async def test_rebuild_names_an_unknown_projection(database_url: str, tmp_path: Path) -> None:
    code, _, err = await _cli(database_url, tmp_path, "projections", "rebuild", "funnels")
    assert code == 2 and "funnels" in err and "profiles" in err and "analytics" in err
