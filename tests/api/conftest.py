"""A real API server (uvicorn on a free local port) over the test's fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.profiles import ProfileProjector
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr


@dataclass
class Api:
    url: str
    store: PostgresEventStore
    settings: Settings
    keys: dict[str, str]
    """Tokens by scope: ingest, read, admin."""

    def client(self, scope: str | None = "ingest") -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def project(self) -> None:
        await ProfileProjector(self.store, self.settings).run_until_caught_up()

    async def store_id(self, user_id: str) -> str:
        """The store's member id of the member a client names `user_id` (after merges)."""
        keyring = Keyring(self.settings.resolved_secret())
        return await resolve_member_id(self.store.pool, user_id, keyring)


@pytest.fixture
async def api(store: PostgresEventStore, tmp_path) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    settings = Settings(
        secret_key=SecretStr("api-test-secret-" + "y" * 32),
        data_dir=tmp_path,
        ingest_max_batch_events=50,
        ingest_max_body_bytes=64 * 1024,
    )
    keys = {}
    for scope in ("ingest", "read", "admin"):
        keys[scope], _ = await create_key(store.pool, [scope], name=f"test {scope}")
    app = create_app(settings, store, run_projector=False)
    async with serve_in_background(app) as url:
        yield Api(url, store, settings, keys)
