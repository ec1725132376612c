"""Segment's e-commerce spec (v2) through the Segment-compatible API: one-product cart events
are folded into the cart snapshot that `cart.updated` means. The payloads are the spec's own
examples (docs/connections/spec/ecommerce/v2); where a test needs several of them to describe
one cart, it says which `cart_id` it gives them."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from .conftest import Api
from .segment_spec import (
    CART_VIEWED,
    CHECKOUT_STARTED,
    ORDER_COMPLETED,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
)

CART = PRODUCT_ADDED["cart_id"]


def track(user: str, event: str, properties: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "userId": user,
        "event": event,
        "properties": copy.deepcopy(properties),
        "messageId": message_id,
    }


async def cart_events(api: Api, user: str) -> list[Any]:
    member = await api.store_id(user)
    return [
        e
        for e in await api.store.read_stream(f"member-{member}")
        if e.type in ("cart.updated", "cart.viewed", "checkout.started", "order.placed")
    ]


def lines(event: Any) -> list[tuple[str, Any]]:
    return [(x["product_id"], x["quantity"]) for x in event.data["items"]]


MONOPOLY, UNO = "507f1f77bcf86cd799439011", "505bd76785ebb509fc183733"


async def test_spec_events_fold_into_cart_snapshots(api: Api) -> None:
    user = "shopper-1"
    uno = {**CHECKOUT_STARTED["products"][1], "cart_id": CART}  # type: ignore[dict-item]
    removed = {**PRODUCT_REMOVED, "cart_id": CART}  # the spec's removal, from the same cart
    calls = [
        track(user, "Product Added", PRODUCT_ADDED, "m-1"),
        track(user, "Product Added", uno, "m-2"),
        track(user, "Product Added", PRODUCT_ADDED, "m-3"),
        track(user, "Product Removed", removed, "m-4"),
        track(user, "Cart Viewed", CART_VIEWED, "m-5"),
        track(user, "Checkout Started", CHECKOUT_STARTED, "m-6"),
        track(user, "Order Completed", ORDER_COMPLETED, "m-7"),
    ]
    async with api.client() as c:
        for call in calls:
            r = await c.post("/v1/track", json=call)
            assert r.status_code == 200 and r.json()["success"] is True, r.text
    events = await cart_events(api, user)
    assert [e.type for e in events] == [
        "cart.updated",
        "cart.updated",
        "cart.updated",
        "cart.updated",
        "cart.viewed",
        "checkout.started",
        "order.placed",
    ]
    assert all(e.data["cart_id"] == CART for e in events[:4])
    assert lines(events[0]) == [(MONOPOLY, 1)]
    assert lines(events[1]) == [(MONOPOLY, 1), (UNO, 2)]
    assert lines(events[2]) == [(MONOPOLY, 2), (UNO, 2)]
    assert lines(events[3]) == [(MONOPOLY, 1), (UNO, 2)]
    first = events[0].data["items"][0]
    assert first["name"] == "Monopoly: 3rd Edition" and first["price"] == 18.99
    # Cart Viewed names its own cart and gives its whole content (no quantity: one each).
    assert events[4].data["cart_id"] == CART_VIEWED["cart_id"]
    assert lines(events[4]) == [(MONOPOLY, 1), (UNO, 1)]
    # Checkout Started and Order Completed name no cart: the member's latest open cart.
    assert events[5].data["cart_id"] == CART_VIEWED["cart_id"]
    assert lines(events[5]) == [(MONOPOLY, 1), (UNO, 2)]
    order = events[6]
    assert order.data["cart_id"] == CART_VIEWED["cart_id"]
    assert order.data["order_id"] == "50314b8e9bcf000000000000" and order.data["total"] == 27.5
    assert lines(order) == [(MONOPOLY, 1), (UNO, 2)]
    # The order closed the cart it came from; the first cart is still open.
    left = await api.store.pool.fetch("SELECT cart_id FROM carts ORDER BY cart_id")
    assert [r["cart_id"] for r in left] == [CART]


async def test_removing_the_last_product_empties_the_cart(api: Api) -> None:
    user = "shopper-2"
    removed = {**PRODUCT_REMOVED, "cart_id": CART}
    async with api.client() as c:
        await c.post("/v1/track", json=track(user, "Product Added", PRODUCT_ADDED, "e-1"))
        await c.post("/v1/track", json=track(user, "Product Removed", removed, "e-2"))
        # A product named neither by product_id nor by sku is refused, naming the field.
        bad = {k: v for k, v in PRODUCT_ADDED.items() if k not in ("product_id", "sku")}
        r = await c.post("/v1/track", json=track(user, "Product Added", bad, "e-3"))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == "properties.product_id"
    events = await cart_events(api, user)
    assert [e.data["items"] for e in events] == [events[0].data["items"], []]
    assert len(events[0].data["items"]) == 1


async def test_a_retried_call_changes_the_cart_once(api: Api) -> None:
    user = "shopper-3"
    call = track(user, "Product Added", PRODUCT_ADDED, "r-1")
    async with api.client() as c:
        for _ in range(3):
            r = await c.post("/v1/track", json=call)
            assert r.status_code == 200
        r = await c.post("/v1/track", json=track(user, "Product Added", PRODUCT_ADDED, "r-2"))
    events = await cart_events(api, user)
    assert [lines(e) for e in events] == [[(MONOPOLY, 1)], [(MONOPOLY, 2)]]


@pytest.mark.parametrize("shared", [False, True], ids=["one-member", "shared-cart"])
async def test_concurrent_adds_to_one_cart_are_not_lost(api: Api, shared: bool) -> None:
    """Many adds at once to one cart, from one member or (a cart shared between devices
    not yet known to be one person) from several: every product ends up in the cart."""
    n = 24

    async def add(i: int) -> None:
        product = {**PRODUCT_ADDED, "product_id": f"p-{i:02d}", "sku": f"S-{i:02d}"}
        user = f"shopper-4-{i}" if shared else "shopper-4"
        async with api.client() as c:
            # Beyond the API's admission queue a request is refused (503, stored nothing)
            # and sent again, as Segment's libraries do: the cart must still hold each line
            # once (the counts below).
            for _ in range(100):
                r = await c.post("/v1/track", json=track(user, "Product Added", product, f"c-{i}"))
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text

    await asyncio.gather(*(add(i) for i in range(n)))
    row = await api.store.pool.fetchrow("SELECT items FROM carts WHERE cart_id = $1", CART)
    assert sorted(x["product_id"] for x in row["items"]) == [f"p-{i:02d}" for i in range(n)]
    # In the order readers see them, each update holds one more line than the one before,
    # and the last is the whole cart: what cart recovery reads.
    seen, _ = await api.store.read_all(types=["cart.updated"])
    assert [len(e.data["items"]) for e in seen] == list(range(1, n + 1))


async def test_erasing_a_member_deletes_their_open_carts(api: Api) -> None:
    async with api.client() as c:
        r = await c.post(
            "/v1/track", json=track("shopper-5", "Product Added", PRODUCT_ADDED, "x-1")
        )
        assert r.status_code == 200, r.text
    assert await api.store.pool.fetchval("SELECT count(*) FROM carts") == 1
    async with api.client("admin") as c:
        r = await c.delete("/v1/members/shopper-5")
        assert r.status_code == 200, r.text
    assert await api.store.pool.fetchval("SELECT count(*) FROM carts") == 0
