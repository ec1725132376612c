"""Events ingested over HTTP start, signal and end a journey through the dispatcher (real
API server, embedded PostgreSQL, Temporal dev server)."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from dispatch_testkit import FAST, eventually, journeys, running, stream, types_of, worker_for
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.routing.dispatcher import Dispatcher
from pydantic import SecretStr

pytestmark = pytest.mark.devserver


def ev(type: str, properties: dict) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "type": type,
        "member": {"id": "http-1"},
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "properties": properties,
    }


async def test_http_ingest_drives_a_cart_journey(temporal_dev, store, tmp_path) -> None:
    settings = Settings(secret_key=SecretStr("e2e-secret-" + "z" * 32), data_dir=tmp_path)
    token, _ = await create_key(store.pool, ["ingest"], name="e2e")
    # "http-1" outside the holdout group: a user id equal to a store member id names it.
    await store.pool.execute("INSERT INTO members (member_id) VALUES ('http-1')")
    app = create_app(settings, store, run_projector=False)
    client = temporal_dev.client
    found = journeys("cart_recovery")
    fast = {"cart_recovery": {**FAST["cart_recovery"], "quiet_period": 0.5, "coupon_delay": 30}}
    async with (
        serve_in_background(app) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http,
        worker_for(client, store, found, fast) as tq,
        running(Dispatcher(store, client, found, task_queue=tq, journey_settings=fast)),
    ):
        r = await http.post(
            "/v1/events", json={"events": [ev("cart.updated", {"cart_id": "k", "items": [1]})]}
        )
        assert r.status_code == 200, r.text
        member = r.json()["results"][0]["member_id"]

        async def reminded() -> bool:
            return "message.sent" in await types_of(store, member)

        await eventually(reminded, what="cart reminder after an HTTP-ingested cart update")
        r = await http.post(
            "/v1/events", json={"events": [ev("order.placed", {"cart_id": "k", "total": 5})]}
        )
        assert r.status_code == 200, r.text

        async def exited() -> bool:
            return "journey.exited" in await types_of(store, member)

        await eventually(exited, what="the order ending the journey")
    done = next(e for e in await stream(store, member) if e.type == "journey.exited")
    assert done.data["reason"] == "ordered" and done.data["converted"] is True
    assert (await types_of(store, member)).count("message.sent") == 1  # no coupon
