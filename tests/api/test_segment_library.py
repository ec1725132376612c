"""The real `segment-analytics-python` and `rudder-sdk-python` libraries against the real
API (uvicorn on a local port): every call type, gzip on and off, error bodies the
libraries can read, and their retries on 429/5xx losing and duplicating nothing.

The libraries are synchronous (a consumer thread posting with `requests`), while the API
serves from the test's event loop: every blocking call (`flush`, `shutdown`) runs in a
worker thread."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.profiles import ProfileProjector
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient
from segment.analytics.request import APIError
from starlette.requests import Request
from starlette.responses import Response

from .conftest import Api

CALLS = ("identify", "track", "page", "screen", "alias", "group")


@contextmanager
def segment_client(url: str, key: str, **options: Any) -> Iterator[tuple[SegmentClient, list]]:
    errors: list[Exception] = []
    options = {"max_retries": 2, "upload_interval": 0.05, **options}
    client = SegmentClient(key, host=url, on_error=lambda e, batch: errors.append(e), **options)
    try:
        yield client, errors
    finally:
        client.shutdown()


def send_every_call(client: Any, user: str, tag: str) -> None:
    """One call of each type, with fixed message ids (so tests can look for them)."""
    client.identify(user, {"email": f"{user}@example.com", "plan": "pro"}, message_id=f"{tag}-i")
    client.track(user, "Signed Up", {"plan": "pro"}, message_id=f"{tag}-t")
    client.page(user, "Docs", "Quickstart", {"url": "https://x.example/q"}, message_id=f"{tag}-p")
    client.screen(user, "App", "Home", {"tab": 1}, message_id=f"{tag}-s")
    client.alias(f"anon-{user}", user, message_id=f"{tag}-a")
    client.group(user, "acme", {"name": "Acme Inc", "seats": 12}, message_id=f"{tag}-g")


async def stored(store: PostgresEventStore, tag: str) -> dict[str, str]:
    rows = await store.pool.fetch(
        "SELECT event_id, type FROM events WHERE event_id LIKE $1 ORDER BY event_id", f"{tag}-%"
    )
    return {r["event_id"]: r["type"] for r in rows}


EXPECTED_TYPES = {
    "i": "member.identified",
    "t": "member.registered",
    "p": "page.viewed",
    "s": "screen.viewed",
    "a": "member.identified",
    "g": "member.grouped",
}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_every_call_type_is_stored_gzip_or_not(api: Api, compress: bool) -> None:
    tag = "gz" if compress else "plain"
    user = f"lib-{tag}"
    with segment_client(api.url, api.keys["ingest"], gzip=compress) as (client, errors):
        send_every_call(client, user, tag)
        await asyncio.to_thread(client.flush)
    assert errors == []
    got = await stored(api.store, tag)
    assert got == {f"{tag}-{k}": v for k, v in EXPECTED_TYPES.items()}
    # The group call stored the membership and the group's traits on the member's profile;
    # the group's traits did not become the member's own.
    await api.project()
    async with api.client("read") as c:
        r = await c.get(f"/v1/members/{user}")
    assert r.status_code == 200, r.text
    traits = r.json()["traits"]
    assert traits["groups"] == {"acme": {"name": "Acme Inc", "seats": 12}}
    assert traits["plan"] == "pro" and "seats" not in traits


async def test_gzip_bodies_are_inflated_within_the_body_limit(api: Api) -> None:
    auth = {
        "Authorization": "Basic " + base64.b64encode(f"{api.keys['ingest']}:".encode()).decode()
    }
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    call = {"type": "track", "userId": "z", "event": "Zipped", "messageId": "zip-1"}
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post(
            "/v1/batch",
            content=gzip.compress(json.dumps({"batch": [call]}).encode()),
            headers=headers,
        )
        assert r.status_code == 200, r.text
        # Small when compressed, larger than the body limit (64 KiB here) when inflated.
        bomb = gzip.compress(json.dumps({"batch": [call], "pad": "x" * 200_000}).encode())
        assert len(bomb) < 64 * 1024
        r = await c.post("/v1/batch", content=bomb, headers=headers)
        assert r.status_code == 413 and r.json()["code"] == "body_too_large", r.text
        r = await c.post("/v1/batch", content=b"not gzip at all", headers=headers)
        assert r.status_code == 400 and r.json()["code"] == "invalid_gzip", r.text
        r = await c.post("/v1/batch", content=b"{}", headers={**headers, "Content-Encoding": "br"})
        assert r.status_code == 415, r.text
    assert await stored(api.store, "zip") == {"zip-1": "custom.zipped"}


async def test_refusals_reach_the_library_with_code_and_message(api: Api) -> None:
    # A batch whose only call is refused (a track call with an empty event name) is answered
    # 422; the library reports our code and message instead of "unknown".
    with segment_client(api.url, api.keys["ingest"], max_retries=0) as (client, errors):
        client.track("u-bad", "", message_id="bad-1")
        await asyncio.to_thread(client.flush)
    assert len(errors) == 1 and isinstance(errors[0], APIError)
    assert errors[0].status == 422 and errors[0].code == "invalid_batch", errors[0]
    assert "batch[0].event" in errors[0].message
    # A wrong key: 401 with the same two fields.
    with segment_client(api.url, "jm_wrong", max_retries=0) as (client, errors):
        client.track("u", "X", message_id="bad-2")
        await asyncio.to_thread(client.flush)
    assert [(e.status, e.code) for e in errors] == [(401, "invalid_api_key")]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- retries
class FlakyProxy:
    """A local HTTP proxy in front of the API that answers the first requests from a script:
    `503` (refused, nothing forwarded) or `lost` (forwarded and stored, but the client gets a
    502 as if the answer had been lost on the way). Later requests pass through."""

    def __init__(self, upstream: str, script: list[str]) -> None:
        self.upstream, self.script, self.seen = upstream, list(script), []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        body = await request.body()
        step = self.script.pop(0) if self.script else "pass"
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        if step == "503":
            answer = Response(b"", status_code=503)
        else:
            async with httpx.AsyncClient(base_url=self.upstream) as c:
                r = await c.post(scope["path"], content=body, headers=headers)
            answer = Response(r.content, r.status_code, media_type="application/json")
            if step == "lost":
                answer = Response(b"upstream answer lost", status_code=502)
        self.seen.append(answer.status_code)
        await answer(scope, receive, send)


@asynccontextmanager
async def proxy(upstream: str, script: list[str]) -> AsyncIterator[tuple[str, FlakyProxy]]:
    app = FlakyProxy(upstream, script)
    async with serve_in_background(app) as url:  # type: ignore[arg-type]
        yield url, app


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
async def test_the_library_retries_5xx_and_nothing_is_lost_or_duplicated(
    api: Api, compress: bool
) -> None:
    tag = "retry-gz" if compress else "retry"
    async with proxy(api.url, ["503", "lost", "503"]) as (url, flaky):
        with segment_client(url, api.keys["ingest"], gzip=compress, max_retries=5) as (
            client,
            errors,
        ):
            send_every_call(client, f"u-{tag}", tag)
            await asyncio.to_thread(client.flush)
    assert errors == []
    assert flaky.seen[:3] == [503, 502, 503] and flaky.seen[-1] == 200
    assert await stored(api.store, tag) == {f"{tag}-{k}": v for k, v in EXPECTED_TYPES.items()}
    rows = await api.store.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_id LIKE $1", f"{tag}-%"
    )
    assert rows == len(EXPECTED_TYPES)  # the re-posted batch was stored once


async def test_the_library_waits_out_429_from_the_rate_limiter(
    store: PostgresEventStore, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        secret_key=SecretStr("api-test-secret-" + "r" * 32),
        data_dir=tmp_path,
        ingest_rate_per_second=1,
        ingest_rate_burst=1,
    )
    key, _ = await create_key(store.pool, ["ingest"], name="rate")
    app = create_app(settings, store, run_projector=False)
    caplog.set_level(logging.DEBUG, logger="segment")
    async with serve_in_background(app) as url:
        # One call per batch: three batches in quick succession against one token a second.
        with segment_client(url, key, upload_size=1, max_retries=3) as (client, errors):
            for i in range(3):
                client.track("u-rate", "Rated", {"i": i}, message_id=f"rate-{i}")
            await asyncio.to_thread(client.flush)
        async with httpx.AsyncClient(base_url=url) as c:
            await c.post("/v1/track", json={}, auth=(key, ""))
            r = await c.post("/v1/track", json={}, auth=(key, ""))
    assert errors == []
    assert any("Rate-limited (status 429)" in m for m in caplog.messages), caplog.messages
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert await stored(store, "rate") == {f"rate-{i}": "custom.rated" for i in range(3)}


# --------------------------------------------------------------------------- RudderStack
async def test_rudderstack_library_every_call_type_and_error_code(api: Api) -> None:
    errors: list[Exception] = []
    client = RudderClient(
        api.keys["ingest"],
        host=api.url,
        max_retries=1,
        upload_interval=0.05,
        on_error=lambda e, batch: errors.append(e),
    )
    assert client.gzip is True  # its default: every batch arrives compressed
    try:
        send_every_call(client, "u-rudder", "rs")
        await asyncio.to_thread(client.flush)
        assert errors == []
        assert await stored(api.store, "rs") == {f"rs-{k}": v for k, v in EXPECTED_TYPES.items()}
        client.track("u-rudder", "", message_id="rs-bad")
        await asyncio.to_thread(client.flush)
    finally:
        await asyncio.to_thread(client.shutdown)
    # It read `code` from the error body (a body without it raised KeyError inside it).
    assert [(e.status, e.code) for e in errors] == [(422, "invalid_batch")]  # type: ignore[attr-defined]


async def test_profile_projection_sees_group_calls(api: Api) -> None:
    """A direct HTTP group call (not through a library) answers 200 and is projected."""
    async with api.client() as c:
        r = await c.post(
            "/v1/group",
            json={"userId": "g-user", "groupId": "initech", "traits": {"industry": "software"}},
        )
        assert r.status_code == 200 and r.json()["success"] is True, r.text
        r = await c.post("/v1/group", json={"userId": "g-user"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_call", r.text
        assert r.json()["error"]["details"][0]["field"] == "groupId"
    await ProfileProjector(api.store, api.settings).run_until_caught_up()
    async with api.client("read") as c:
        r = await c.get("/v1/members/g-user")
    assert r.json()["traits"]["groups"] == {"initech": {"industry": "software"}}


async def test_write_key_in_the_body_as_older_segment_libraries_send_it(api: Api) -> None:
    """analytics-python before 2.4 posts `/v1/batch` with no Authorization header, the
    write key only in the body's `writeKey` (gzip or not)."""
    call = {"type": "track", "userId": "old-lib", "event": "Old Lib", "messageId": "wk-1"}
    body = {"batch": [call], "writeKey": api.keys["ingest"], "sentAt": "2026-01-01T00:00:00Z"}
    async with httpx.AsyncClient(base_url=api.url) as c:
        r = await c.post("/v1/batch", json=body)
        assert r.status_code == 200, r.text
        zipped = gzip.compress(
            json.dumps({**body, "batch": [{**call, "messageId": "wk-2"}]}).encode()
        )
        r = await c.post(
            "/v1/batch",
            content=zipped,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200, r.text
        r = await c.post("/v1/batch", json={**body, "writeKey": "jm_nope"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_api_key", r.text
        r = await c.post("/v1/batch", json={"batch": [call]})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    assert await stored(api.store, "wk") == {"wk-1": "custom.old_lib", "wk-2": "custom.old_lib"}
