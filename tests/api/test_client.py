"""The Python client against the real server: batching, idempotent retries, errors."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from journeyman.engine.client import (
    ApiRequestError,
    AsyncJourneymanClient,
    JourneymanClient,
    make_event,
)

from .conftest import Api

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def test_async_client_batches_and_is_idempotent(api: Api) -> None:
    events = [make_event("page.viewed", {"id": f"c-{i % 3}"}, occurred_at=T) for i in range(120)]
    async with AsyncJourneymanClient(api.url, api.keys["ingest"], batch_size=50) as jm:
        first = await jm.send_batch(events, concurrency=3)
        assert first.accepted == 120 and [o.index for o in first.results] == list(range(120))
        again = await jm.send_batch(events)
        assert again.duplicates == 120
        outcome = await jm.identify({"id": "c-0"}, {"plan": "pro"}, timezone="Asia/Tokyo")
        assert outcome.status == "accepted"
        tracked = await jm.track("cart.updated", {"email": "bad"})
        assert tracked.status == "rejected" and tracked.errors[0].field == "events[0].member.email"
    async with api.store.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 121


class FlakyTransport(httpx.AsyncBaseTransport):
    """Fails the first attempts (a 503, then a 429 with Retry-After, then a dropped
    connection) before passing requests on to the real server."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        if self.calls == 2:
            return httpx.Response(429, headers={"Retry-After": "0"})
        if self.calls == 3:
            # The request reaches the server, but the answer is lost.
            await self.inner.handle_async_request(request)
            raise httpx.ReadError("connection reset", request=request)
        return await self.inner.handle_async_request(request)


async def test_retries_on_503_429_and_lost_answers_store_once(api: Api) -> None:
    transport = FlakyTransport()
    events = [make_event("app.opened", {"device_id": "d-1"}, occurred_at=T) for _ in range(3)]
    async with AsyncJourneymanClient(
        api.url, api.keys["ingest"], transport=transport, backoff=0.01
    ) as jm:
        result = await jm.send_batch(events)
    assert transport.calls == 4
    assert result.duplicates == 3  # the lost answer's request had stored them
    async with api.store.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 3


async def test_sync_client_and_request_errors(api: Api) -> None:
    def work() -> None:
        with JourneymanClient(api.url, api.keys["ingest"]) as jm:
            assert jm.track("order.placed", {"id": "s-1"}, {"total": 5}).status == "accepted"
        with JourneymanClient(api.url, api.keys["read"]) as jm, pytest.raises(ApiRequestError) as e:
            jm.track("order.placed", {"id": "s-1"})
        assert e.value.status == 403

    await asyncio.to_thread(work)
