"""Shared helpers of the delivery and feedback tests: members with contact points and
consent, channels pointed at the real protocol peers, a `Deliverer` on the test's database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from journeyman.channels.email import EmailChannel
from journeyman.channels.outbox import OutboxChannel
from journeyman.channels.sms import SmsChannel
from journeyman.engine.contracts.delivery import SendRequest
from journeyman.engine.core.delivery_settings import DeliverySettings
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.profiles import ProfileProjector
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr

SECRET = "delivery-test-secret-" + "y" * 32
SMS_CALLBACK = "http://127.0.0.1:1/webhooks/sms"


def make_settings(tmp_path: Any, **delivery: Any) -> Settings:
    config = {"quiet_hours_start": None, "frequency_cap": None, **delivery}
    return Settings(
        secret_key=SecretStr(SECRET),
        data_dir=tmp_path,
        delivery=DeliverySettings(**config),
    )


def email_channel(peer: Any, **overrides: Any) -> EmailChannel:
    config = {
        "host": "127.0.0.1",
        "port": peer.port,
        "security": "none",
        "from_address": "Shop <news@shop.test>",
        "timeout": 5,
    }
    return EmailChannel({**config, **overrides})


def sms_channel(peer: Any, callback: str = SMS_CALLBACK, **overrides: Any) -> SmsChannel:
    return SmsChannel(
        {
            "account_sid": peer.account_sid,
            "auth_token": peer.auth_token,
            "from_number": "+15005550006",
            "api_base_url": peer.url,
            "status_callback_url": callback,
            **overrides,
        }
    )


def outbox_channel(directory: Any) -> OutboxChannel:
    return OutboxChannel({"directory": str(directory)})


async def add_member(
    store: PostgresEventStore,
    settings: Settings,
    *,
    email: str | None = "ada@example.com",
    phone: str | None = "+14155550123",
    timezone: str | None = None,
    locale: str | None = None,
    consent: dict[str, bool] | None = None,
    push: list[dict[str, Any]] | None = None,
    member_id: str | None = None,
    external_ids: dict[str, str] | None = None,
) -> str:
    """Register a member through ingestion and project the profile; returns the store's id.

    With `member_id`, that id is also the store's id (a user id equal to a store member id
    names that member), for tests that need to know it beforehand (holdout assignment)."""
    if member_id:
        await store.pool.execute(
            "INSERT INTO members (member_id) VALUES ($1) ON CONFLICT DO NOTHING", member_id
        )
    member: dict[str, Any] = {"id": member_id or f"m-{uuid.uuid4().hex[:10]}"}
    if email:
        member["email"] = email
    if phone:
        member["phone"] = phone
    if push:
        member["push_subscriptions"] = push
    if external_ids:
        member["external_ids"] = external_ids
    props: dict[str, Any] = {}
    if timezone:
        props["timezone"] = timezone
    if locale:
        props["locale"] = locale
    props["consent"] = {"sms:marketing": True, **(consent or {})}
    result = await Ingestor(store, settings).ingest_raw(
        [
            {
                "event_id": uuid.uuid4().hex,
                "type": "member.registered",
                "member": member,
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "properties": props,
            }
        ]
    )
    assert result.accepted == 1, result
    await project(store, settings)
    return result.results[0].member_id or member["id"]


async def project(store: PostgresEventStore, settings: Settings) -> None:
    await ProfileProjector(store, settings).run_until_caught_up()


def request(
    member_id: str,
    channels: list[str],
    *,
    template: str = "cart_reminder",
    step: str = "1:reminder",
    workflow_id: str | None = None,
    purpose: str = "marketing",
    **context: Any,
) -> SendRequest:
    return SendRequest(
        journey="cart_recovery",
        member_id=member_id,
        workflow_id=workflow_id or f"journey/cart_recovery/{member_id}/{uuid.uuid4().hex[:6]}",
        entry_id="run-1",
        step=step,
        channels=channels,
        template=template,
        context={"cart_id": "c1", "items": [{"name": "Teapot"}], **context},
        purpose=purpose,  # type: ignore[arg-type]
    )


def deliverer(
    store: PostgresEventStore, settings: Settings, channels: dict[str, Any], **kwargs: Any
) -> Deliverer:
    return Deliverer(store, channels, settings=settings, **kwargs)


async def types_of(store: PostgresEventStore, member_id: str) -> list[str]:
    return [e.type for e in await store.read_stream(f"member-{member_id}")]


async def ledger_row(store: PostgresEventStore, delivery_id: str) -> dict[str, Any] | None:
    row = await store.pool.fetchrow(
        "SELECT * FROM message_ledger WHERE delivery_id = $1", delivery_id
    )
    return None if row is None else dict(row)
