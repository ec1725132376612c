"""A real API server over the test's fresh database, with keys of every scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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

SECRET = "privacy-test-secret-" + "p" * 32


@dataclass
class Api:
    url: str
    store: PostgresEventStore
    settings: Settings
    keys: dict[str, str]
    app: Any

    def client(self, scope: str | None = "admin") -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def project(self) -> None:
        await ProfileProjector(self.store, self.settings).run_until_caught_up()

    async def store_id(self, user_id: str) -> str:
        """The store's member id of the member a client names `user_id` (after merges)."""
        keyring = Keyring(self.settings.resolved_secret())
        return await resolve_member_id(self.store.pool, user_id, keyring)


def make_settings(tmp_path: Any, **overrides: Any) -> Settings:
    return Settings(**{"secret_key": SecretStr(SECRET), "data_dir": tmp_path, **overrides})


@pytest.fixture
async def api(store: PostgresEventStore, tmp_path) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    keys = {}
    for scope in ("ingest", "read", "admin"):
        keys[scope], _ = await create_key(store.pool, [scope], name=f"test {scope}")
    app = create_app(settings, store, run_projector=False)
    async with serve_in_background(app) as url:
        yield Api(url, store, settings, keys, app)
