"""Feedback endpoints over real HTTP (uvicorn on 127.0.0.1): Twilio-signed status callbacks
and inbound STOP/START from the Twilio peer, click and open tracking from a real email's
links, one-click unsubscribe; events are idempotent and the ledger only moves forward."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from delivery.delivery_testkit import (
    add_member,
    email_channel,
    ledger_row,
    make_settings,
    project,
    request,
    sms_channel,
    types_of,
)
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.delivery.feedback import Feedback
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.profiles import get_profile
from journeyman.event_store import PostgresEventStore


@dataclass
class Env:
    url: str
    store: PostgresEventStore
    settings: Any
    smtp: SmtpPeer
    twilio: TwilioPeer
    deliverer: Deliverer

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, follow_redirects=False)


@pytest.fixture
async def env(store, tmp_path) -> AsyncIterator[Env]:
    settings = make_settings(tmp_path)
    app = create_app(settings, store, run_projector=False)
    async with SmtpPeer() as smtp, TwilioPeer() as twilio, serve_in_background(app) as url:
        settings.delivery.public_url = url
        channels = {
            "email": email_channel(smtp),
            "sms": sms_channel(twilio, callback=f"{url}/webhooks/sms"),
        }
        app.state.feedback = Feedback(store, channels, settings)
        yield Env(url, store, settings, smtp, twilio, Deliverer(store, channels, settings=settings))
        for c in channels.values():
            await c.aclose()


async def test_twilio_status_callbacks_fold_monotonically(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    outcome = await env.deliverer.deliver(request(member, ["sms"]))
    assert outcome.status == "sent"
    sid = env.twilio.messages[0].sid
    assert (await env.twilio.send_status_callback(sid, "delivered")).status_code == 200
    row = await ledger_row(env.store, outcome.delivery_id)
    assert row is not None and row["status"] == "delivered" and row["delivered_at"] is not None
    # a late "sent" and a repeated "delivered" change nothing
    assert (await env.twilio.send_status_callback(sid, "sent")).status_code == 200
    assert (await env.twilio.send_status_callback(sid, "delivered")).status_code == 200
    row = await ledger_row(env.store, outcome.delivery_id)
    assert row is not None and row["status"] == "delivered"
    types = await types_of(env.store, member)
    assert types.count("message.delivered") == 1
    delivered = next(
        e for e in await env.store.read_stream(f"member-{member}") if e.type == "message.delivered"
    )
    assert delivered.data["journey"] == "cart_recovery"
    assert delivered.data["delivery_id"] == outcome.delivery_id


async def test_a_receipt_that_overtakes_the_recording_of_its_send_is_kept(env: Env) -> None:
    """Twilio may call back before the engine has recorded the send it reports on: the
    receipt waits for the ledger row instead of being dropped."""
    member = await add_member(env.store, env.settings)
    async with env.store.pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        # Recording the send (the ledger insert) waits behind this lock; reads do not.
        await blocker.execute("LOCK TABLE message_ledger IN EXCLUSIVE MODE")
        send = asyncio.create_task(env.deliverer.deliver(request(member, ["sms"])))
        while not env.twilio.messages:
            await asyncio.sleep(0.01)
        sid = env.twilio.messages[0].sid
        receipt = asyncio.create_task(env.twilio.send_status_callback(sid, "delivered"))
        await asyncio.sleep(0.5)
        assert not receipt.done()  # waiting for the row, not dropped
        await tx.rollback()
        outcome = await send
        assert (await receipt).status_code == 200
    row = await ledger_row(env.store, outcome.delivery_id)
    assert row is not None and row["status"] == "delivered"
    assert (await types_of(env.store, member)).count("message.delivered") == 1


async def test_webhook_with_a_bad_signature_is_refused(env: Env) -> None:
    async with env.http() as http:
        r = await http.post(
            "/webhooks/sms",
            data={"MessageSid": "SM1", "MessageStatus": "delivered"},
            headers={"X-Twilio-Signature": "forged"},
        )
        assert r.status_code == 403
        assert (await http.post("/webhooks/nosuch", data={})).status_code == 404


async def test_sms_stop_revokes_consent_at_once_and_start_restores_it(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    inbound = f"{env.url}/webhooks/sms"
    r = await env.twilio.send_inbound(inbound, from_="+14155550123", body="STOP")
    assert r.status_code == 200 and "<Response" in r.text
    types = await types_of(env.store, member)
    assert types[-2:] == ["member.unsubscribed", "member.consent_changed"]
    # before the profile has folded it, the block already stops SMS
    blocked = await env.deliverer.deliver(request(member, ["sms"]))
    assert blocked.status == "suppressed" and "blocked" in blocked.reason
    await project(env.store, env.settings)
    profile = await get_profile(env.store.pool, member, settings=env.settings)
    assert profile is not None and profile.consent["sms:marketing"] is False
    tx = await env.deliverer.deliver(request(member, ["sms"], step="2:tx", purpose="transactional"))
    assert tx.status == "suppressed"
    assert env.twilio.accepted == 0
    # START gives consent back
    await env.twilio.send_inbound(inbound, from_="+14155550123", body="START")
    await project(env.store, env.settings)
    profile = await get_profile(env.store.pool, member, settings=env.settings)
    assert profile is not None and profile.consent["sms:marketing"] is True
    assert "sms" not in profile.suppressed
    again = await env.deliverer.deliver(request(member, ["sms"], step="3:after-start"))
    assert again.status == "sent" and env.twilio.accepted == 1


async def test_click_and_open_tracking_from_a_real_email(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    outcome = await env.deliverer.deliver(request(member, ["email"]))
    html = env.smtp.messages[0].get_body(("html",)).get_content()
    click = re.search(r'href="([^"]*/t/c/[^"]+)"', html)
    pixel = re.search(r'src="([^"]*/t/o/[^"]+)"', html)
    assert click and pixel
    async with env.http() as http:
        r = await http.get(click.group(1))
        assert r.status_code == 302 and r.headers["location"] == "https://shop.example/cart/c1"
        assert (await http.get(click.group(1))).status_code == 302  # a second click
        r = await http.get(pixel.group(1))
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
        # a token altered by one character is refused
        token = click.group(1).rsplit("/", 1)[1]
        flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
        assert (await http.get(f"/t/c/{flipped}")).status_code == 400
        assert (await http.get("/t/c/not-a-token")).status_code == 400
        # an open token is not a click token
        open_token = pixel.group(1).rsplit("/", 1)[1].removesuffix(".gif")
        assert (await http.get(f"/t/c/{open_token}")).status_code == 400
    types = await types_of(env.store, member)
    assert types.count("message.clicked") == 1 and types.count("message.opened") == 1
    row = await ledger_row(env.store, outcome.delivery_id)
    assert row is not None and row["status"] == "clicked" and row["opened_at"] is not None


async def test_expired_link_is_gone(env: Env) -> None:
    import datetime as dt

    signer = env.deliverer.links
    token = signer.token(
        "click",
        delivery_id="d",
        member_id="m",
        channel="email",
        url="https://x.test",
        expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
    )
    async with env.http() as http:
        assert (await http.get(f"/t/c/{token}")).status_code == 410


async def test_one_click_unsubscribe(env: Env) -> None:
    member = await add_member(env.store, env.settings)
    await env.deliverer.deliver(request(member, ["email"]))
    header = env.smtp.messages[0]["List-Unsubscribe"].strip("<>")
    assert env.smtp.messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    async with env.http() as http:
        page = await http.get(header)
        assert page.status_code == 200 and "<form method='post'>" in page.text
        assert "member.unsubscribed" not in await types_of(env.store, member)  # GET changes nothing
        r = await http.post(
            header,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200 and "unsubscribed" in r.text  # no redirect
        assert (await http.post(header, content="List-Unsubscribe=One-Click")).status_code == 200
        tampered = header[:-3] + ("x" if header[-3] != "x" else "y") + header[-2:]
        assert (await http.post(tampered)).status_code == 400
    assert (await types_of(env.store, member)).count("member.unsubscribed") == 1
    again = await env.deliverer.deliver(request(member, ["email"], step="2:next"))
    assert again.status == "suppressed" and len(env.smtp.messages) == 1
    await project(env.store, env.settings)
    profile = await get_profile(env.store.pool, member, settings=env.settings)
    assert profile is not None and profile.consent["email:marketing"] is False
