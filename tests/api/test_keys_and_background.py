"""API keys at the storage level, and the projection running inside the API process."""

from __future__ import annotations

import asyncio
import uuid

from journeyman.engine.access.keys import KeyVerifier, create_key, list_keys, revoke_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.event_store import PostgresEventStore

from .conftest import Api


async def test_keys_verify_revoke_and_scopes(store: PostgresEventStore) -> None:
    token, key = await create_key(store.pool, ["read", "ingest"], "both")
    verifier = KeyVerifier(store.pool, cache_seconds=0)
    found = await verifier.verify(token)
    assert found is not None and found.allows("read") and not found.allows("admin")
    assert await verifier.verify(token + "x") is None
    assert await verifier.verify("not-a-token") is None
    assert await revoke_key(store.pool, key.key_id)
    assert await verifier.verify(token) is None
    assert not await revoke_key(store.pool, key.key_id)
    [row] = await list_keys(store.pool)
    assert row["revoked_at"] is not None and token not in str(dict(row))


async def test_profile_appears_via_background_projection(api: Api) -> None:
    app = create_app(api.settings, api.store, run_projector=True)
    async with serve_in_background(app) as url:
        event = {
            "event_id": uuid.uuid4().hex,
            "type": "order.placed",
            "member": {"id": "bg-1"},
            "occurred_at": "2026-01-01T00:00:00Z",
            "properties": {"total": 42},
        }
        headers = {"Authorization": f"Bearer {api.keys['admin']}"}
        import httpx

        async with httpx.AsyncClient(base_url=url, headers=headers) as c:
            assert (await c.post("/v1/events", json={"events": [event]})).status_code == 200
            for _ in range(200):
                r = await c.get("/v1/members/bg-1")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.02)
            assert r.status_code == 200 and r.json()["monetary_value"] == 42
