"""The API with real channels against local provider peers, for forged-request tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.delivery.feedback import Feedback
from journeyman.engine.delivery.service import Deliverer
from journeyman.event_store import PostgresEventStore

from tests.delivery.delivery_testkit import email_channel, make_settings, sms_channel


@dataclass
class Env:
    url: str
    store: PostgresEventStore
    settings: Any
    smtp: SmtpPeer
    twilio: TwilioPeer
    deliverer: Deliverer
    channels: dict[str, Any]
    keys: dict[str, str]
    app: Any

    def http(self, scope: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(
            base_url=self.url, timeout=10, follow_redirects=False, headers=headers
        )

    async def event_count(self) -> int:
        return await self.store.pool.fetchval("SELECT count(*) FROM events")


@pytest.fixture
async def env(store, tmp_path) -> AsyncIterator[Env]:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    keys = {}
    for scope in ("ingest", "read", "admin"):
        keys[scope], _ = await create_key(store.pool, [scope], name=f"test {scope}")
    app = create_app(settings, store, run_projector=False)
    async with SmtpPeer() as smtp, TwilioPeer() as twilio, serve_in_background(app) as url:
        settings.delivery.public_url = url
        channels = {
            "email": email_channel(smtp),
            "sms": sms_channel(twilio, callback=f"{url}/webhooks/sms"),
        }
        app.state.feedback = Feedback(store, channels, settings)
        deliverer = Deliverer(store, channels, settings=settings)
        yield Env(url, store, settings, smtp, twilio, deliverer, channels, keys, app)
        for c in channels.values():
            await c.aclose()
