"""A served API keeps the objects it loaded at start out of the cycle collector's walks.

Full collections keep coming while batches are ingested; each one pauses every request in
flight for as long as it takes to walk the tracked objects, so the process's start-up
heap (routes, plugins, clients) must not be part of that walk."""

from __future__ import annotations

import gc

import httpx
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from pydantic import SecretStr


async def test_startup_objects_are_left_out_of_full_collections(
    database_url: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        secret_key=SecretStr("heap-test-secret-" + "h" * 32),
        data_dir=tmp_path,
        database_url=database_url,
        api_run_projector=False,
    )
    gc.collect()
    tracked_before = len(gc.get_objects())
    try:
        async with serve_in_background(create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/openapi.json")).status_code == 200
            tracked = len(gc.get_objects())
            # What a full collection walks now: only what was made after start-up.
            assert tracked < tracked_before / 4, (tracked, tracked_before)
    finally:
        gc.unfreeze()
