"""Twilio callbacks over real HTTP, signed with the `twilio` library's own `RequestValidator`:
a signature is checked over the configured public URL only, never the URL the request claims
(its `Host` header or forwarded scheme); without a public URL they are refused; a body that
is not UTF-8 is a 400, whatever its signature."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from journeyman.channels.testing.peers import TwilioPeer
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.feedback import Feedback
from journeyman.event_store import PostgresEventStore
from twilio.request_validator import RequestValidator

from tests.delivery.delivery_testkit import add_member, ledger_row, request, sms_channel

from .conftest import Env

PHONE = "+14155550123"


def _inbound(body: str = "STOP", sid: str = "SM" + "1" * 32) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": PHONE,
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": "+15005550006",
    }


async def _types(store: PostgresEventStore, member: str) -> list[str]:
    return [e.type for e in await store.read_stream(f"member-{member}")]


async def test_inbound_stop_is_checked_over_the_public_url_only(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    validator = RequestValidator(env.twilio.auth_token)
    public = f"{env.url}/webhooks/sms"
    params = _inbound()
    port = env.url.rsplit(":", 1)[1]
    # signatures made for a URL the attacker owns, replayed to us with a Host (or forwarded
    # scheme) that makes the URL the API sees equal to the signed one
    elsewhere = [
        ("attacker.example", "http://attacker.example/webhooks/sms", {}),
        (f"localhost:{port}", f"http://localhost:{port}/webhooks/sms", {}),
        (None, f"https://127.0.0.1:{port}/webhooks/sms", {"X-Forwarded-Proto": "https"}),
    ]
    before = await env.event_count()
    async with env.http() as http:
        for host, signed_for, extra in elsewhere:
            headers = {"X-Twilio-Signature": validator.compute_signature(signed_for, params)}
            headers |= extra
            if host:
                headers["Host"] = host
            r = await http.post("/webhooks/sms", data=params, headers=headers)
            assert r.status_code == 403, (host, signed_for, r.status_code, r.text)
        good = validator.compute_signature(public, params)
        forged = {
            "forged signature": ({"X-Twilio-Signature": "Zm9yZ2VkIHNpZ25hdHVyZQ=="}, params),
            "another account's token": (
                {
                    "X-Twilio-Signature": RequestValidator("y" * 32).compute_signature(
                        public, params
                    )
                },
                params,
            ),
            "parameter altered": ({"X-Twilio-Signature": good}, {**params, "From": "+1415555"}),
            "parameter added": ({"X-Twilio-Signature": good}, {**params, "OptOutType": "STOP"}),
        }
        for what, (headers, form) in forged.items():
            r = await http.post("/webhooks/sms", data=form, headers=headers)
            assert r.status_code == 403, what
        assert await env.event_count() == before
        assert "member.unsubscribed" not in await _types(env.store, member)
        # control: the true signature over the public URL is accepted, whatever the Host
        r = await http.post(
            "/webhooks/sms",
            data=params,
            headers={"X-Twilio-Signature": good, "Host": "attacker.example"},
        )
        assert r.status_code == 200, r.text
    assert "member.unsubscribed" in await _types(env.store, member)


async def test_status_callbacks_are_checked_over_the_public_url_only(env: Env) -> None:
    member = await add_member(env.store, env.settings, phone=PHONE)
    outcome = await env.deliverer.deliver(request(member, ["sms"]))
    assert outcome.status == "sent"
    message = env.twilio.messages[0]
    assert message.status_callback is not None
    path_and_query = message.status_callback.removeprefix(env.url)
    assert path_and_query.startswith("/webhooks/sms?delivery_id=")
    params = {
        "AccountSid": env.twilio.account_sid,
        "MessageSid": message.sid,
        "MessageStatus": "delivered",
        "SmsSid": message.sid,
        "SmsStatus": "delivered",
        "To": message.to,
    }
    validator = RequestValidator(env.twilio.auth_token)
    async with env.http() as http:
        other_host = validator.compute_signature(f"http://attacker.example{path_and_query}", params)
        r = await http.post(
            path_and_query,
            data=params,
            headers={"X-Twilio-Signature": other_host, "Host": "attacker.example"},
        )
        assert r.status_code == 403
        # a true signature for one delivery, replayed against another delivery id
        good = validator.compute_signature(message.status_callback, params)
        r = await http.post(
            "/webhooks/sms?delivery_id=another",
            data=params,
            headers={"X-Twilio-Signature": good},
        )
        assert r.status_code == 403
        row = await ledger_row(env.store, outcome.delivery_id)
        assert row is not None and row["status"] == "sent"
        r = await http.post(path_and_query, data=params, headers={"X-Twilio-Signature": good})
        assert r.status_code == 200, r.text
    row = await ledger_row(env.store, outcome.delivery_id)
    assert row is not None and row["status"] == "delivered"


@pytest.mark.parametrize("signature", [None, "Zm9yZ2Vk", "valid-for-the-text"])
async def test_a_body_that_is_not_utf8_is_400_whatever_its_signature(
    env: Env, signature: str | None
) -> None:
    body = b"Body=ST\xffOP&From=%2B14155550123&MessageSid=SM1&SmsStatus=received"
    headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "valid-for-the-text":
        params = {"Body": "ST\ufffdOP", "From": PHONE, "MessageSid": "SM1"}
        signature = RequestValidator(env.twilio.auth_token).compute_signature(
            f"{env.url}/webhooks/sms", params | {"SmsStatus": "received"}
        )
    if signature:
        headers["X-Twilio-Signature"] = signature
    # with no signature at all there is nothing to check: refused before the body is read
    expected, says = (400, "body:") if signature else (403, "the callback's signature")
    before = await env.event_count()
    async with env.http() as http:
        r = await http.post("/webhooks/sms", content=body, headers=headers)
        assert r.status_code == expected, r.text
        assert r.text.startswith(says)
        for name in ("email", "webhook", "nosuch"):  # every other callback endpoint: a 4xx
            r = await http.post(f"/webhooks/{name}", content=body, headers=headers)
            assert 400 <= r.status_code < 500, (name, r.status_code)
    assert await env.event_count() == before


@pytest.fixture
async def no_public_url(store: PostgresEventStore, tmp_path) -> AsyncIterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The API with a configured SMS channel but JOURNEYMAN_DELIVERY__PUBLIC_URL unset."""
    settings = Settings(data_dir=tmp_path, secret_key="s" * 48)
    assert "public_url" not in settings.delivery.model_fields_set
    async with TwilioPeer() as twilio:
        channel = sms_channel(twilio)
        app = create_app(settings, store, run_projector=False)
        async with serve_in_background(app) as url:
            app.state.feedback = Feedback(store, {"sms": channel}, settings)
            yield {"url": url, "twilio": twilio, "store": store}
        await channel.aclose()


async def test_without_a_public_url_signed_callbacks_are_refused(
    no_public_url: dict[str, Any],
) -> None:
    url, twilio, store = no_public_url["url"], no_public_url["twilio"], no_public_url["store"]
    # the request's own URL, correctly signed: still refused, naming the setting
    r = await twilio.send_inbound(f"{url}/webhooks/sms", from_=PHONE, body="STOP")
    assert r.status_code == 403
    assert "JOURNEYMAN_DELIVERY__PUBLIC_URL" in r.text
    assert await store.pool.fetchval("SELECT count(*) FROM events") == 0
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/webhooks/nosuch", data={})).status_code == 404


async def test_the_api_says_at_start_when_callbacks_will_be_refused(
    store: PostgresEventStore, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    async with TwilioPeer() as twilio:
        sms = {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_number": "+15005550006",
            "api_base_url": twilio.url,
        }
        for public, warned in ((None, True), ("https://jm.example", False)):
            caplog.clear()
            delivery = {"public_url": public} if public else {}
            settings = Settings(
                data_dir=tmp_path, secret_key="s" * 48, channels={"sms": sms}, delivery=delivery
            )
            app = create_app(settings, store, run_projector=False)
            with caplog.at_level(logging.WARNING, logger="journeyman.engine.delivery.feedback"):
                async with serve_in_background(app):
                    pass
            said = [r.getMessage() for r in caplog.records if "PUBLIC_URL" in r.getMessage()]
            assert bool(said) is warned, said
            if warned:
                assert "sms" in said[0]


async def test_undecodable_input_to_any_feedback_endpoint_is_a_4xx(env: Env) -> None:
    """Tokens and bodies that are not UTF-8 (or not tokens at all): never a 5xx."""
    junk = b"\xff\xfe\x00%ff&List-Unsubscribe=One-Click\x80"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    tokens = ["%ff%fe", "%00", "a.b", "%ED%A0%80", "x" * 5000, "..%2f..%2fetc"]
    before = await env.event_count()
    async with env.http() as http:
        for token in tokens:
            for method, path in (
                ("GET", f"/t/c/{token}"),
                ("GET", f"/t/o/{token}.gif"),
                ("GET", f"/u/{token}"),
                ("POST", f"/u/{token}"),
                ("GET", f"/v1/consent/confirm/{token}"),
                ("POST", f"/v1/consent/confirm/{token}"),
            ):
                r = await http.request(method, path, content=junk, headers=form)
                assert 400 <= r.status_code < 500, (method, path, r.status_code)
        for path in ("/webhooks/sms", "/webhooks/email", "/webhooks/%ff", "/dashboard/login"):
            r = await http.post(
                path, content=junk, headers={**form, "X-Twilio-Signature": "Zm9yZ2Vk"}
            )
            assert 400 <= r.status_code < 500, (path, r.status_code)
    assert await env.event_count() == before
