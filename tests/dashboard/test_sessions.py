"""Dashboard sign-in sessions over real HTTP: the cookie is an opaque session id (never the
key), stored hashed server-side; it expires, sign-out ends it for every copy, revoking the key
ends it, forged cookies are refused, and it is `Secure` when the dashboard is served over
https."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from journeyman.engine.access.keys import create_key, revoke_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.api.dashboard import COOKIE
from journeyman.engine.core.settings import Settings
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    r = await http.post("/dashboard/login", content=f"key={key}&next=/dashboard", headers=FORM)
    assert r.status_code == 303, r.text
    return r


def _set_cookie(r: httpx.Response) -> str:
    [header] = [v for k, v in r.headers.multi_items() if k == "set-cookie"]
    return header


async def _admits(url: str, session: str) -> bool:
    """Does a fresh browser holding just this cookie value get the dashboard?"""
    async with httpx.AsyncClient(base_url=url, cookies={COOKIE: session}) as other:
        r = await other.get("/dashboard")
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


async def test_the_cookie_is_an_opaque_server_side_session(dash, store: PostgresEventStore) -> None:  # type: ignore[no-untyped-def]
    key = dash.keys["admin"]
    async with dash.client(None) as browser:
        r = await _sign_in(browser, key)
        header = _set_cookie(r)
        session = browser.cookies[COOKIE]
        assert session and key not in header and key.split("_", 2)[2] not in header
        assert "HttpOnly" in header and "SameSite=strict" in header.replace("Strict", "strict")
        assert "Secure" not in header  # served over plain http to a plain-http public URL
        assert "Max-Age=28800" in header
        assert (await browser.get("/dashboard")).status_code == 200
    stored = await store.pool.fetch("SELECT session_hash, key_id FROM dashboard_sessions")
    assert [r["session_hash"] for r in stored] == [hashlib.sha256(session.encode()).digest()]
    assert stored[0]["key_id"] == key.split("_")[1]
    dump = await store.pool.fetchval("SELECT string_agg(t::text, ' ') FROM dashboard_sessions t")
    assert session not in dump and key not in dump


async def test_forged_cookies_are_refused(dash) -> None:  # type: ignore[no-untyped-def]
    for forged in (dash.keys["admin"], "x" * 43, "", "jm_" + "0" * 12 + "_abc"):
        assert not await _admits(dash.url, forged), forged


async def test_a_session_expires(dash, store: PostgresEventStore) -> None:  # type: ignore[no-untyped-def]
    async with dash.client(None) as browser:
        await _sign_in(browser, dash.keys["admin"])
        session = browser.cookies[COOKIE]
    assert await _admits(dash.url, session)
    await store.pool.execute("UPDATE dashboard_sessions SET expires_at = now() - interval '1s'")
    assert not await _admits(dash.url, session)
    # a later sign-in sweeps the expired row
    async with dash.client(None) as browser:
        await _sign_in(browser, dash.keys["admin"])
    assert await store.pool.fetchval("SELECT count(*) FROM dashboard_sessions") == 1


async def test_sign_out_ends_the_session_for_every_copy(dash) -> None:  # type: ignore[no-untyped-def]
    async with dash.client(None) as browser:
        await _sign_in(browser, dash.keys["admin"])
        session = browser.cookies[COOKIE]
        page = await browser.get("/dashboard")
        assert 'action="/dashboard/logout"' in page.text
        r = await browser.post("/dashboard/logout")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert COOKIE not in browser.cookies
        assert (await browser.get("/dashboard")).status_code == 303
    assert not await _admits(dash.url, session)  # a copy taken before sign-out


async def test_revoking_the_key_ends_its_sessions(dash, store: PostgresEventStore) -> None:  # type: ignore[no-untyped-def]
    token, key = await create_key(store.pool, ["admin"], name="to revoke")
    async with dash.client(None) as browser:
        await _sign_in(browser, token)
        session = browser.cookies[COOKIE]
    assert await _admits(dash.url, session)
    assert await revoke_key(store.pool, key.key_id)
    assert not await _admits(dash.url, session)


@pytest.fixture
async def https_dash(store: PostgresEventStore, tmp_path) -> AsyncIterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The API with an https public URL (TLS ended by a proxy in front of it)."""
    settings = Settings(
        secret_key=SecretStr("dash-test-secret-" + "z" * 32),
        data_dir=tmp_path,
        delivery={"public_url": "https://journeyman.example"},
    )
    token, _ = await create_key(store.pool, ["admin"], name="https admin")
    app = create_app(settings, store, run_projector=False)
    async with serve_in_background(app) as url:
        yield url, token


async def test_the_cookie_is_secure_when_served_over_https(dash, https_dash) -> None:  # type: ignore[no-untyped-def]
    url, token = https_dash
    async with httpx.AsyncClient(base_url=url) as browser:
        assert "Secure" in _set_cookie(await _sign_in(browser, token))
        r = await browser.post("/dashboard/logout")
        assert "Secure" in _set_cookie(r)
    # a plain-http public URL, but the request came over https (a trusted local proxy)
    forwarded = {"X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=dash.url, headers=forwarded) as browser:
        assert "Secure" in _set_cookie(await _sign_in(browser, dash.keys["admin"]))
