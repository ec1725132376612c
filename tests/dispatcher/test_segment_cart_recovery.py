"""A Segment-shaped shop (one product per `Product Added`, an `Order Completed` that names
no cart) gets the built-in cart recovery journey: real API server, embedded PostgreSQL,
dispatcher and worker on the Temporal dev server."""

from __future__ import annotations

import base64

import httpx
import pytest
from dispatch_testkit import FAST, eventually, journeys, running, stream, types_of, worker_for
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.workflows.cart_recovery import CartRecovery
from pydantic import SecretStr

from tests.api.segment_spec import ORDER_COMPLETED, PRODUCT_ADDED
from tests.workflows.journey_testkit import member_with

pytestmark = pytest.mark.devserver


async def test_segment_product_added_starts_cart_recovery(temporal_dev, store, tmp_path) -> None:
    settings = Settings(secret_key=SecretStr("e2e-secret-" + "s" * 32), data_dir=tmp_path)
    token, _ = await create_key(store.pool, ["ingest"], name="segment")
    app = create_app(settings, store, run_projector=False)
    client = temporal_dev.client
    found = journeys("cart_recovery")
    fast = {"cart_recovery": {**FAST["cart_recovery"], "quiet_period": 0.5, "coupon_delay": 30}}
    # A user id equal to a store member id names that member: one outside the holdout group,
    # so the reminder is due rather than withheld.
    shopper = member_with(CartRecovery, holdout=False)
    await store.pool.execute("INSERT INTO members (member_id) VALUES ($1)", shopper)
    basic = {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()}
    async with (
        serve_in_background(app) as url,
        httpx.AsyncClient(base_url=url, headers=basic) as http,
        worker_for(client, store, found, fast) as tq,
        running(Dispatcher(store, client, found, task_queue=tq, journey_settings=fast)),
    ):
        call = {"type": "track", "userId": shopper, "event": "Product Added"}
        r = await http.post(
            "/v1/batch",
            json={"batch": [{**call, "properties": PRODUCT_ADDED, "messageId": "pa-1"}]},
        )
        assert r.status_code == 200 and r.json()["success"] is True, r.text
        member = r.json()["results"][0]["member_id"]
        assert member == shopper

        async def reminded() -> bool:
            return "message.sent" in await types_of(store, member)

        await eventually(reminded, what="cart reminder after a Segment Product Added")
        order = {**call, "event": "Order Completed", "properties": ORDER_COMPLETED}
        r = await http.post("/v1/batch", json={"batch": [{**order, "messageId": "oc-1"}]})
        assert r.status_code == 200, r.text

        async def exited() -> bool:
            return "journey.exited" in await types_of(store, member)

        await eventually(exited, what="the Segment order ending the cart journey")
    events = await stream(store, member)
    entered = next(e for e in events if e.type == "journey.entered")
    assert entered.data["key"] == PRODUCT_ADDED["cart_id"] and entered.data["trigger"] == "pa-1"
    # The order named no cart: it was credited to the member's open cart, whose run it ended.
    placed = next(e for e in events if e.type == "order.placed")
    assert placed.data["cart_id"] == PRODUCT_ADDED["cart_id"]
    done = next(e for e in events if e.type == "journey.exited")
    assert done.data["reason"] == "ordered" and done.data["converted"] is True
    assert (await types_of(store, member)).count("message.sent") == 1
