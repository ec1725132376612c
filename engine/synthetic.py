"""A synthetic shop: members browsing, filling carts, ordering, and some going quiet.

Deterministic for a seed, with deterministic event ids, so generating twice yields the same
events (and ingesting them twice stores them once).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ShopEvent:
    event_id: str
    type: str
    member_id: str
    occurred_at: dt.datetime
    properties: dict[str, Any]
    email: str | None = None
    phone: str | None = None


PRODUCTS = [(f"sku-{i:03d}", round(5 + (i * 7.3) % 95, 2)) for i in range(60)]


def generate_shop(
    members: int, events: int, *, seed: int = 7, days: int = 60, end: dt.datetime | None = None
) -> Iterator[ShopEvent]:
    """Yield about `events` events for `members` members over `days` days, in time order."""
    rng = random.Random(seed)
    end = end or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    start = end - dt.timedelta(days=days)
    per_member = max(1, events // max(members, 1))
    out: list[ShopEvent] = []
    for m in range(members):
        mid = f"m{seed}-{m:05d}"
        joined = start + dt.timedelta(seconds=rng.uniform(0, days * 86400 * 0.5))
        # Some members go quiet part-way through: they are the win-back audience.
        quiet_from = (
            joined + dt.timedelta(days=rng.uniform(3, days * 0.5)) if rng.random() < 0.3 else end
        )
        n = 0
        out.append(
            ShopEvent(
                f"{mid}-reg",
                "member.registered",
                mid,
                joined,
                {"timezone": rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo"])},
                email=f"{mid}@example.com",
                phone=f"+1555{m:07d}",
            )
        )
        t = joined
        while n < per_member:
            t += dt.timedelta(hours=rng.expovariate(1 / 20))
            if t >= min(end, quiet_from):
                break
            sku, price = rng.choice(PRODUCTS)
            roll = rng.random()
            n += 1
            eid = f"{mid}-{n}"
            if roll < 0.6:
                out.append(ShopEvent(eid, "page.viewed", mid, t, {"url": f"/products/{sku}"}))
            elif roll < 0.85:
                cart = f"{mid}-cart-{n // 10}"
                out.append(
                    ShopEvent(
                        eid,
                        "cart.updated",
                        mid,
                        t,
                        {"cart_id": cart, "items": [{"sku": sku, "qty": 1, "price": price}]},
                    )
                )
            else:
                out.append(
                    ShopEvent(
                        eid,
                        "order.placed",
                        mid,
                        t,
                        {
                            "order_id": f"o-{eid}",
                            "total": price,
                            "cart_id": f"{mid}-cart-{n // 10}",
                        },
                    )
                )
    out.sort(key=lambda e: e.occurred_at)
    yield from out
