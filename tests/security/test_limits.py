"""Abuse resistance at the API: per-key ingestion rate limits, body size and JSON nesting
limits, key rotation and revocation."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journeyman.engine.access.keys import create_key, revoke_key, rotate_key
from journeyman.engine.access.ratelimit import TokenBuckets
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.api.limits import deeper_than, json_depth

from tests.delivery.delivery_testkit import make_settings
from tests.ingestion.helpers import event


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: now[0])
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)
    assert buckets.take("other") == 0.0  # keys are independent
    now[0] = 0.5
    assert buckets.take("k") == 0.0 and buckets.take("k") > 0
    assert buckets.retry_after(0.01) == 1 and buckets.retry_after(2.2) == 3


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 50 + b"]" * 50) == 50


@settings(max_examples=300, deadline=None)
@given(
    body=st.recursive(
        st.none() | st.integers() | st.text(alphabet='[]{}"\\ax'),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=30,
    ).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=60),
    limit=st.integers(0, 8),
)
def test_deeper_than_agrees_with_the_exact_depth(body: bytes, limit: int) -> None:
    # Any bytes, valid JSON or not: the bracket bound only ever skips the exact count.
    assert deeper_than(body, limit) == (json_depth(body) > limit)


def test_deeper_than_looks_past_brackets_in_strings() -> None:
    shallow = b'{"a": "' + b"[" * 40 + b'"}'
    assert not deeper_than(shallow, 3)  # 41 brackets counted, but only 1 level of nesting
    deep = b'{"a": "' + b"[" * 40 + b'", "b": ' + b"[" * 5 + b"]" * 5 + b"}"
    assert deeper_than(deep, 5) and not deeper_than(deep, 6)


async def test_ingestion_rate_limit_per_key(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    settings.ingest_rate_per_second = 2
    settings.ingest_rate_burst = 5
    first, _ = await create_key(store.pool, ["ingest"], name="first")
    second, _ = await create_key(store.pool, ["ingest"], name="second")
    app = create_app(settings, store, run_projector=False)
    import httpx

    async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url) as http:

        async def send(token: str) -> httpx.Response:
            return await http.post(
                "/v1/events",
                json={"events": [event("page.viewed", id="m-rate")]},
                headers={"Authorization": f"Bearer {token}"},
            )

        started = time.monotonic()
        answers = [await send(first) for _ in range(8)]
        elapsed = time.monotonic() - started
        codes = [r.status_code for r in answers]
        # 5 at once (the burst), then one more per half second at most (a busy machine may
        # take long enough for a token to refill between requests)
        allowed = codes.count(200)
        assert codes[:5] == [200] * 5 and 429 in codes, codes
        assert allowed <= 5 + int(elapsed * 2) + 1, (codes, elapsed)
        limited = next(r for r in answers if r.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        # another key has its own bucket
        assert (await send(second)).status_code == 200
        # the bucket refills at the configured rate
        await asyncio.sleep(float(limited.headers["Retry-After"]))
        assert (await send(first)).status_code == 200
        # only accepted requests stored anything
        stored = await store.pool.fetchval("SELECT count(*) FROM events WHERE type='page.viewed'")
        assert stored == allowed + 2  # + the other key's one + the one after the refill


async def test_body_size_and_nesting_limits(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    settings.ingest_max_body_bytes = 20_000
    token, _ = await create_key(store.pool, ["admin"], name="admin")
    app = create_app(settings, store, run_projector=False)
    import httpx

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url) as http:
        big = json.dumps({"events": [event(properties={"x": "y" * 30_000})]})
        r = await http.post("/v1/events", content=big, headers=headers)
        assert r.status_code == 413

        # streamed without a Content-Length: refused as soon as it passes the limit
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b" " * 5_000

        r = await http.post("/v1/events", content=chunks(), headers=headers)
        assert r.status_code == 413
        deep = {"events": [event(properties={"p": json.loads("[" * 40 + "]" * 40)})]}
        for path, method in (
            ("/v1/events", "POST"),
            ("/v1/batch", "POST"),
            ("/v1/members/m1/consent", "PUT"),
        ):
            r = await http.request(method, path, content=json.dumps(deep), headers=headers)
            assert r.status_code == 400 and r.json()["error"]["code"] == "too_deep", path
        very_deep = b"[" * 100_000 + b"]" * 100_000
        r = await http.post("/v1/events", content=very_deep, headers=headers)
        assert r.status_code in (400, 413)
        ok = {"events": [event(id="m-ok", properties={"p": [[[{"q": [1]}]]]})]}
        r = await http.post("/v1/events", json=ok, headers=headers)
        assert r.status_code == 200, r.text
    assert await store.pool.fetchval("SELECT count(*) FROM events") == 1


async def test_key_rotation_and_revocation(store, tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    old, key = await create_key(store.pool, ["ingest", "read"], name="shop")
    app = create_app(settings, store, run_projector=False)
    import httpx

    async with serve_in_background(app) as url, httpx.AsyncClient(base_url=url) as http:
        app.state.verifier.cache_seconds = 0  # revocation takes effect at once in this test

        async def status(token: str) -> int:
            r = await http.post(
                "/v1/events",
                json={"events": [event("page.viewed", id="m-k")]},
                headers={"Authorization": f"Bearer {token}"},
            )
            return r.status_code

        assert await status(old) == 200
        conn = await asyncpg.connect(database_url)
        try:
            new, new_key = await rotate_key(conn, key.key_id)
            assert new_key.scopes == key.scopes and new_key.name == "shop"
            with pytest.raises(LookupError):
                await rotate_key(conn, key.key_id)  # already rotated away
            assert await status(old) == 401
            assert await status(new) == 200
            assert await revoke_key(conn, new_key.key_id)
            assert await status(new) == 401
        finally:
            await conn.close()
