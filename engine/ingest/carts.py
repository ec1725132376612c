"""Cart state for clients that report a cart one product at a time.

In Journeyman, `cart.updated` means "this is the cart now": cart recovery keys its run by
`cart_id`, reminds the member of `items`, and ends when `items` is empty. Segment's
e-commerce spec instead sends `Product Added` / `Product Removed` with one product each, and
the whole cart only on `Cart Viewed`, `Checkout Started` and `Order Completed` (`products`).

The Segment endpoints turn each such call into a `CartChange` (`change_for`). Inside the
ingest transaction, after identity resolution, `CartFolder` applies the changes to the
`carts` table (one row per cart: its owner and its lines) and gives each event the
resulting snapshot (`cart_id`, `items`):

* `add` / `remove`: one product's quantity goes up or down (a line at zero is dropped);
* `replace`: `Cart Viewed` / `Checkout Started` with `products` set the cart's lines;
* `order`: `Order Completed` closes the cart: the row is deleted and, when the order names
  no `cart_id`, the member's open cart is named on the order, so an order ends (and
  converts) the cart journey of the cart it came from.

A call without `cart_id` uses the member's most recently changed open cart (a new one for
an add). Concurrent changes are never lost: each transaction first takes advisory locks on
the member and on the named carts (sorted, so two batches cannot deadlock) before any write,
so changes to a cart apply one after the other and in the store's read order. A call whose
`messageId` is already stored (a client's retry) changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg

Kind = Literal["add", "remove", "replace", "order"]

LINE_FIELDS = (
    "product_id",
    "sku",
    "name",
    "brand",
    "category",
    "variant",
    "price",
    "quantity",
    "coupon",
    "url",
    "image_url",
)
"""The Segment product fields a cart line keeps (the spec's product properties)."""

_MAX_LINES = 500


@dataclass(frozen=True)
class CartChange:
    kind: Kind
    cart_id: str | None
    lines: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _quantity(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value if value > 0 else 0
    return 1


def line_of(product: Any) -> dict[str, Any] | None:
    """A cart line from a Segment product object, or None when it names no product."""
    if not isinstance(product, dict):
        return None
    line = {k: product[k] for k in LINE_FIELDS if product.get(k) is not None}
    if not isinstance(line.get("product_id") or line.get("sku"), str | int):
        return None
    line["quantity"] = _quantity(product.get("quantity"))
    return line


def _line_key(line: dict[str, Any]) -> str:
    return json.dumps([line.get("product_id") or line.get("sku"), line.get("variant")])


def _cart_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 200:
        return value
    return None


def change_for(name: str, properties: dict[str, Any]) -> CartChange | None:
    """The cart change a Segment e-commerce event stands for (None for other events)."""
    name = name.strip().lower()
    cart_id = _cart_id(properties.get("cart_id"))
    if name in ("product added", "product removed"):
        line = line_of(properties)
        if line is None:
            return None
        kind: Kind = "add" if name == "product added" else "remove"
        if kind == "remove" and properties.get("quantity") is None:
            line["quantity"] = math.inf  # no quantity: the whole line goes
        return CartChange(kind, cart_id, (line,))
    products = properties.get("products")
    if name in ("cart viewed", "checkout started") and isinstance(products, list):
        lines = tuple(x for p in products[:_MAX_LINES] if (x := line_of(p)) is not None)
        return CartChange("replace", cart_id, lines)
    if name == "order completed":
        return CartChange("order", cart_id)
    return None


def items_of(products: Any) -> list[dict[str, Any]]:
    """Order lines from a Segment `products` list."""
    if not isinstance(products, list):
        return []
    return [x for p in products[:_MAX_LINES] if (x := line_of(p)) is not None]


def apply(lines: list[dict[str, Any]], change: CartChange) -> list[dict[str, Any]]:
    """The cart's lines after `change` (pure)."""
    if change.kind == "replace":
        return [dict(x) for x in change.lines]
    if change.kind == "order":
        return []
    out = [dict(x) for x in lines]
    for line in change.lines:
        key = _line_key(line)
        current = next((x for x in out if _line_key(x) == key), None)
        if change.kind == "add":
            if line["quantity"] <= 0:
                continue
            if current is None:
                if len(out) < _MAX_LINES:
                    out.append(dict(line))
            else:
                quantity = current["quantity"] + line["quantity"]
                current.update(line)
                current["quantity"] = quantity
        elif current is not None:
            current["quantity"] = current["quantity"] - line["quantity"]
            if current["quantity"] <= 0:
                out.remove(current)
    return out


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class CartFolder:
    """Applies the cart changes of one ingest batch, in its transaction.

    `changes` maps event ids to their change; `__call__` is the Ingestor's `amend` hook: it
    gets the batch's events and resolved member ids and returns, by position, the
    properties each changed event is stored with.
    """

    def __init__(self, changes: dict[str, CartChange]) -> None:
        self.changes = changes

    async def __call__(
        self, conn: asyncpg.Connection, events: Sequence[Any], member_ids: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        todo = [
            (j, e, member_ids[j], self.changes[e.event_id])
            for j, e in enumerate(events)
            if e.event_id in self.changes
        ]
        if not todo:
            return {}
        keys = {_lock_key("cart-member:" + m) for _, _, m, _ in todo}
        keys |= {_lock_key("cart:" + c.cart_id) for *_, c in todo if c.cart_id}
        # Locks before any write: the transaction's id (the store's read order) is then
        # taken after the previous change to these carts has committed.
        for key in sorted(keys):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
        stored = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM events WHERE event_id = ANY($1::text[])",
                [e.event_id for _, e, _, _ in todo],
            )
        }
        carts: dict[str, list[dict[str, Any]] | None] = {}
        out: dict[int, dict[str, Any]] = {}
        for j, e, member_id, change in todo:
            if e.event_id in stored:
                continue
            cart_id = change.cart_id or await self._open_cart(conn, member_id, carts)
            if cart_id is None and change.kind == "add":
                cart_id = "cart-" + hashlib.sha256(e.event_id.encode()).hexdigest()[:24]
            if cart_id is None:
                continue
            if cart_id not in carts:
                carts[cart_id] = await self._load(conn, cart_id)
            lines = apply(carts[cart_id] or [], change)
            carts[cart_id] = None if change.kind == "order" else lines
            await self._save(conn, cart_id, member_id, carts[cart_id], e.occurred_at)
            props = {**e.properties, "cart_id": cart_id}
            if change.kind != "order":
                props["items"] = lines
            out[j] = props
        return out

    async def _open_cart(
        self,
        conn: asyncpg.Connection,
        member_id: str,
        seen: dict[str, list[dict[str, Any]] | None],
    ) -> str | None:
        rows = await conn.fetch(
            "SELECT cart_id FROM carts WHERE member_id = $1 OR member_id IN "
            "(SELECT member_id FROM members WHERE merged_into = $1) "
            "ORDER BY updated_at DESC, cart_id",
            member_id,
        )
        for r in rows:
            if seen.get(r["cart_id"], []) is not None:
                return r["cart_id"]
        return None

    async def _load(self, conn: asyncpg.Connection, cart_id: str) -> list[dict[str, Any]]:
        raw = await conn.fetchval("SELECT items FROM carts WHERE cart_id = $1 FOR UPDATE", cart_id)
        if raw is None:
            return []
        return json.loads(raw) if isinstance(raw, str) else list(raw)

    async def _save(
        self,
        conn: asyncpg.Connection,
        cart_id: str,
        member_id: str,
        lines: list[dict[str, Any]] | None,
        at: dt.datetime,
    ) -> None:
        if lines is None:
            await conn.execute("DELETE FROM carts WHERE cart_id = $1", cart_id)
            return
        await conn.execute(
            "INSERT INTO carts (cart_id, member_id, items, updated_at) "
            "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (cart_id) DO UPDATE SET "
            "member_id = excluded.member_id, items = excluded.items, "
            "updated_at = greatest(carts.updated_at, excluded.updated_at)",
            cart_id,
            member_id,
            lines,
            at,
        )
