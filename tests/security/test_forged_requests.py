"""Forged provider callbacks and tampered or expired signed links are refused and record
nothing; the genuine ones (controls) are accepted."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from journeyman.engine.delivery.links import LinkSigner
from journeyman.engine.delivery.workers import load_channels
from journeyman.engine.privacy import ConfirmSigner
from twilio.request_validator import RequestValidator

from tests.delivery.delivery_testkit import add_member, request

from .conftest import Env


def _flip(token: str, at: int = 5) -> str:
    c = token[at]
    return token[:at] + ("A" if c != "A" else "B") + token[at + 1 :]


async def test_every_provider_endpoint_refuses_forged_callbacks(env: Env) -> None:
    """Every registered channel, configured or not: no signature, no event."""
    names = set(load_channels(env.settings, strict=False)) | set(env.channels)
    assert {"email", "sms", "webhook"} <= names
    before = await env.event_count()
    async with env.http() as http:
        for name in sorted(names):
            r = await http.post(
                f"/webhooks/{name}",
                data={
                    "MessageSid": "SM1",
                    "MessageStatus": "delivered",
                    "From": "+14155550123",
                    "Body": "STOP",
                },
                headers={"X-Twilio-Signature": "Zm9yZ2Vk", "X-Signature": "forged"},
            )
            assert r.status_code in (403, 404), (name, r.status_code, r.text)
    assert await env.event_count() == before


async def test_twilio_signature_checks(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    url = f"{env.url}/webhooks/sms"
    params = {
        "From": "+14155550123",
        "Body": "STOP",
        "MessageSid": "SMforged",
        "To": "+15005550006",
    }
    token = env.twilio.auth_token
    good = RequestValidator(token).compute_signature(url, params)
    forged = {
        "no signature": ({}, params),
        "another auth token": (
            {"X-Twilio-Signature": RequestValidator("x" * 32).compute_signature(url, params)},
            params,
        ),
        "signed for another URL": (
            {"X-Twilio-Signature": RequestValidator(token).compute_signature(url + "x", params)},
            params,
        ),
        "body changed after signing": ({"X-Twilio-Signature": good}, {**params, "Body": "START"}),
        "parameter added after signing": (
            {"X-Twilio-Signature": good},
            {**params, "OptOutType": "STOP"},
        ),
    }
    before = await env.event_count()
    async with env.http() as http:
        for what, (headers, form) in forged.items():
            r = await http.post("/webhooks/sms", data=form, headers=headers)
            assert r.status_code == 403, what
        assert await env.event_count() == before
        # control: the genuine callback is accepted and records the opt-out
        r = await http.post("/webhooks/sms", data=params, headers={"X-Twilio-Signature": good})
        assert r.status_code == 200, r.text
    types = [e.type for e in await env.store.read_stream(f"member-{member}")]
    assert "member.unsubscribed" in types


async def test_tracking_and_unsubscribe_links_are_signed_and_expire(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    outcome = await env.deliverer.deliver(request(member, ["email"]))
    assert outcome.status == "sent"
    now = dt.datetime.now(dt.UTC)
    base = {"delivery_id": outcome.delivery_id, "member_id": member, "channel": "email"}
    secret = env.settings.resolved_secret()
    links = LinkSigner(secret, env.url)
    other = LinkSigner(b"another-secret-" + b"q" * 32, env.url)
    click = links.token(
        "click", url="https://shop.example/x", expires_at=now + dt.timedelta(hours=1), **base
    )
    unsub = links.token("unsubscribe", expires_at=now + dt.timedelta(hours=1), **base)
    expired = links.token(
        "click", url="https://shop.example/x", expires_at=now - dt.timedelta(seconds=1), **base
    )
    expired_unsub = links.token("unsubscribe", expires_at=now - dt.timedelta(seconds=1), **base)
    # a link to anywhere, re-signed with another secret: an open redirect attempt
    evil = other.token(
        "click", url="https://evil.example/", expires_at=now + dt.timedelta(hours=1), **base
    )
    payload, sig = click.split(".")
    cases = [
        ("GET", f"/t/c/{_flip(click)}", 400),
        ("GET", f"/t/c/{payload}.{_flip(sig, 2)}", 400),
        ("GET", f"/t/c/{payload}", 400),
        ("GET", f"/t/c/{evil}", 400),
        ("GET", f"/t/c/{unsub}", 400),  # a valid token of another kind
        ("GET", f"/t/o/{click}.gif", 400),
        ("POST", f"/u/{_flip(unsub)}", 400),
        ("POST", f"/u/{click}", 400),
        ("GET", f"/t/c/{expired}", 410),
        ("POST", f"/u/{expired_unsub}", 410),
    ]
    before = await env.event_count()
    async with env.http() as http:
        for method, path, status in cases:
            r = await http.request(method, path)
            assert r.status_code == status, (path, r.status_code)
            assert "evil.example" not in r.headers.get("location", "")
        assert await env.event_count() == before
        # controls
        r = await http.get(f"/t/c/{click}")
        assert r.status_code == 302 and urlsplit(r.headers["location"]).netloc == "shop.example"
        assert (await http.post(f"/u/{unsub}")).status_code == 200
    assert await env.event_count() > before


async def test_double_opt_in_links_are_signed_and_expire(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    signer = ConfirmSigner(env.settings.resolved_secret(), env.url)
    now = dt.datetime.now(dt.UTC)
    claims = {"member_id": member, "channel": "email", "purpose": "marketing", "request_id": "r1"}
    good = signer.token(**claims, expires_at=now + dt.timedelta(days=1))
    expired = signer.token(**claims, expires_at=now - dt.timedelta(seconds=1))
    other = ConfirmSigner(b"another-secret-" + b"q" * 32, env.url).token(
        **claims, expires_at=now + dt.timedelta(days=1)
    )
    # a tracking link's token is not a confirmation, even though both are signed
    click = LinkSigner(env.settings.resolved_secret(), env.url).token(
        "click",
        url="https://x.example/",
        delivery_id="d",
        member_id=member,
        channel="email",
        expires_at=now + dt.timedelta(days=1),
    )
    before = await env.event_count()
    async with env.http() as http:
        for token, status in ((_flip(good), 400), (other, 400), (click, 400), (expired, 410)):
            assert (await http.post(f"/v1/consent/confirm/{token}")).status_code == status
            assert (await http.get(f"/v1/consent/confirm/{token}")).status_code == status
        assert await env.event_count() == before
        # the page does not change anything (mail scanners follow links); the button does
        assert (await http.get(f"/v1/consent/confirm/{good}")).status_code == 200
        assert await env.event_count() == before
        assert (await http.post(f"/v1/consent/confirm/{good}")).status_code == 200
        assert (await http.post(f"/v1/consent/confirm/{good}")).status_code == 200  # idempotent
    granted = [
        e.data
        for e in await env.store.read_stream(f"member-{member}")
        if e.type == "member.consent_changed"
    ]
    assert granted == [granted[0]] and granted[0]["granted"] is True
    assert granted[0]["source"] == "double_opt_in"
    # after erasure the link records nothing
    async with env.http("admin") as http:
        assert (await http.delete(f"/v1/members/{member}")).status_code == 200
        again = signer.token(
            **{**claims, "request_id": "r2"}, expires_at=now + dt.timedelta(days=1)
        )
        assert (await http.post(f"/v1/consent/confirm/{again}")).status_code == 410
