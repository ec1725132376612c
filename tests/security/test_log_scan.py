"""No secret or personal data in logs: a full flow with every logger at DEBUG, then a scan
of everything logged for the member's email and phone, API key tokens, the server secret
and the provider credentials."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.delivery.test_journey_delivery import cart_member_id, delivery_workers, run_cart
from tests.ingestion.helpers import event

from .conftest import Env

EMAIL = "log.scan.person@example.com"
PHONE = "+14155550142"
PEER_LOGGERS = ("mail.log",)  # aiosmtpd, the SMTP server the email channel talks to


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(PEER_LOGGERS):
            return  # the provider's side of the wire (the local SMTP peer), not ours
        try:
            text = record.getMessage()
        except Exception:  # a bad format string still counts as logged text
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture
def captured() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    old_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_root)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_a_full_run_logs_no_secrets_or_personal_data(
    env: Env, temporal_env, captured
) -> None:  # type: ignore[no-untyped-def]
    for name in list(logging.root.manager.loggerDict):  # loggers created since the fixture
        logging.getLogger(name).setLevel(logging.DEBUG)
    member = cart_member_id()
    # The store's id too (a user id equal to a store member id names that member), so the
    # holdout group is known beforehand.
    await env.store.pool.execute("INSERT INTO members (member_id) VALUES ($1)", member)
    async with env.http("ingest") as http:
        r = await http.post(
            "/v1/events",
            json={
                "events": [
                    event(
                        "member.registered",
                        id=member,
                        email=EMAIL,
                        phone=PHONE,
                        properties={"consent": {"sms:marketing": True}},
                    )
                ]
            },
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        # a rejected event and a bad key are logged paths too
        await http.post("/v1/events", json={"events": [{"type": "x", "member": {"email": EMAIL}}]})
    async with env.http() as anon:
        await anon.post(
            "/v1/events", json={}, headers={"Authorization": f"Bearer {env.keys['admin']}x"}
        )
    from journeyman.engine.profiles import ProfileProjector

    await ProfileProjector(env.store, env.settings).run_until_caught_up()
    # the cart journey sends an email and an SMS through the real peers
    async with delivery_workers(temporal_env.client, env.store, env.deliverer) as tq:
        result = await run_cart(temporal_env.client, tq, member)
    assert [s.status for s in result.sends] == ["sent", "sent"]
    assert len(env.smtp.messages) == 1 and env.twilio.accepted == 1
    # provider feedback: a signed status callback and an inbound STOP
    sid = env.twilio.messages[0].sid
    assert (await env.twilio.send_status_callback(sid, "delivered")).status_code == 200
    r = await env.twilio.send_inbound(f"{env.url}/webhooks/sms", from_=PHONE, body="STOP")
    assert r.status_code == 200
    # export and erasure
    async with env.http("admin") as http:
        assert (await http.get(f"/v1/members/{member}/export")).status_code == 200
        assert (await http.delete(f"/v1/members/{member}")).status_code == 200

    logged = "\n".join(captured.lines)
    assert len(captured.lines) > 20, "the run should have logged something to scan"
    assert any(line.startswith("journeyman.engine.privacy.erasure:") for line in captured.lines)
    forbidden = {
        "email": EMAIL,
        "email local part": EMAIL.split("@")[0],
        "phone": PHONE,
        "phone digits": PHONE.lstrip("+"),
        "server secret": env.settings.resolved_secret().decode(),
        "twilio auth token": env.twilio.auth_token,
        **{f"{scope} API key": token for scope, token in env.keys.items()},
        **{f"{scope} API key secret": token.split("_", 2)[2] for scope, token in env.keys.items()},
    }
    found = {what: value for what, value in forbidden.items() if value and value in logged}
    lines = [line for line in captured.lines if any(v in line for v in found.values())]
    assert not found, (sorted(found), lines[:5])


BOT_TOKEN = "123456789:AAbotTokenInTheUrl-" + "q" * 16


async def _deliver_through_bot(env: Env, step: str) -> None:
    from journeyman.engine.delivery.service import Deliverer

    from tests.delivery.delivery_testkit import add_member, request

    from .bot_api import BotApi, BotChannel

    member = await add_member(env.store, env.settings, email=None, phone=None)
    async with BotApi(BOT_TOKEN) as api:
        channel = BotChannel({"api_url": api.url, "token": BOT_TOKEN})
        try:
            deliverer = Deliverer(env.store, {"bot": channel}, settings=env.settings)
            outcome = await deliverer.deliver(request(member, ["bot"], step=step))
        finally:
            await channel.aclose()
        assert outcome.status == "sent" and len(api.sent) == 1, outcome


@pytest.fixture
def http_logging() -> Iterator[None]:
    """Restores the HTTP client loggers' levels and filters after a test."""
    from journeyman.engine.runtime.logs import HTTP_CLIENT_LOGGERS

    saved = {
        n: (logging.getLogger(n).level, list(logging.getLogger(n).filters))
        for n in HTTP_CLIENT_LOGGERS
    }
    root_level = logging.getLogger().level
    yield
    for name, (level, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.filters[:] = filters
    logging.getLogger().setLevel(root_level)


async def test_a_token_in_a_provider_url_stays_out_of_the_logs(env: Env, http_logging) -> None:  # type: ignore[no-untyped-def]
    """A Telegram-style channel (the bot token is in every request URL) with the logging the
    worker sets up, then with every logger at DEBUG: the token is never logged."""
    from journeyman.engine.runtime.logs import HTTP_CLIENT_LOGGERS, configure_logging

    handler = _Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        # control: with plain INFO logging httpx writes the request URL, token and all
        root.setLevel(logging.INFO)
        for name in HTTP_CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
            logging.getLogger(name).filters.clear()
        await _deliver_through_bot(env, "0:control")
        assert any(BOT_TOKEN in line for line in handler.lines), handler.lines
        handler.lines.clear()
        # what `journeyman worker` runs with
        configure_logging()
        root.setLevel(logging.INFO)  # basicConfig's level (pytest's handlers make it a no-op)
        await _deliver_through_bot(env, "1:default")
        assert not any(line.startswith(("httpx:", "httpcore")) for line in handler.lines)
        # every logger at DEBUG, HTTP clients included: URLs are cut to their origin
        for name in [*logging.root.manager.loggerDict, ""]:
            logging.getLogger(name).setLevel(logging.DEBUG)
        await _deliver_through_bot(env, "2:debug")
    finally:
        root.removeHandler(handler)
    logged = "\n".join(handler.lines)
    assert any(line.startswith("httpx:") for line in handler.lines), "httpx should log at DEBUG"
    for secret in (BOT_TOKEN, BOT_TOKEN.split(":")[1], "/sendMessage"):
        assert secret not in logged, [line for line in handler.lines if secret in line][:3]
