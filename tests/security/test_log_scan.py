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
    from engine.profiles import ProfileProjector

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
    assert any(line.startswith("engine.privacy.erasure:") for line in captured.lines)
    forbidden = {
        "email": EMAIL,
        "email local part": EMAIL.split("@")[0],
        "phone": PHONE,
        "phone digits": PHONE.lstrip("+"),
        "server secret": env.settings.resolved_secret().decode(),
        "twilio auth token": env.twilio.auth_token,
        **{f"{scope} API key": token for scope, token in env.keys.items()},
        **{
            f"{scope} API key secret": token.rsplit("_", 1)[-1] for scope, token in env.keys.items()
        },
    }
    found = {what: value for what, value in forbidden.items() if value and value in logged}
    lines = [line for line in captured.lines if any(v in line for v in found.values())]
    assert not found, (sorted(found), lines[:5])
