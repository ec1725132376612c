"""A synthetic shop: members who register, browse, fill carts and order — and some who go
quiet — over a span of days before `end`.

Deterministic for a seed, with deterministic event ids, so generating twice yields the same
events and ingesting them twice stores them once. `Shop.history()` is the past (imported
before journeys run; older than every journey's freshness window, so it starts nothing but
shapes profiles); the demo adds the live part (new registrations, abandoned carts, members'
responses) on top.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PRODUCTS = [(f"sku-{i:03d}", round(5 + (i * 7.3) % 95, 2)) for i in range(60)]
TIMEZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC"]


@dataclass(frozen=True)
class ShopMember:
    id: str
    email: str
    phone: str
    timezone: str
    joined: dt.datetime
    quiet_from: dt.datetime | None = None
    """When they stopped visiting (None: active throughout)."""

    def registration(self) -> ShopEvent:
        return ShopEvent(
            f"{self.id}-reg",
            "member.registered",
            self.id,
            self.joined,
            {"timezone": self.timezone, "consent": {"sms:marketing": True}},
            contacts=True,
        )


@dataclass(frozen=True)
class ShopEvent:
    event_id: str
    type: str
    member_id: str
    occurred_at: dt.datetime
    properties: dict[str, Any] = field(default_factory=dict)
    contacts: bool = False
    """Carry the member's email and phone (registration)."""

    def api(self, member: ShopMember | None = None) -> dict[str, Any]:
        """The event as `POST /v1/events` takes it."""
        who: dict[str, Any] = {"id": self.member_id}
        if self.contacts and member is not None:
            who.update(email=member.email, phone=member.phone)
        return {
            "event_id": self.event_id,
            "type": self.type,
            "member": who,
            "occurred_at": self.occurred_at.isoformat(),
            "properties": self.properties,
        }


class Shop:
    """`members` members (a share of them joining only later, in the live part) and about
    `events` events of history over `days` days ending at `end`."""

    def __init__(
        self,
        members: int,
        events: int,
        *,
        seed: int = 7,
        days: int = 60,
        end: dt.datetime | None = None,
        new_share: float = 0.075,
        quiet_share: float = 0.3,
    ) -> None:
        self.seed = seed
        self.days = days
        self.end = end or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        self.start = self.end - dt.timedelta(days=days)
        rng = random.Random(seed)
        n_new = round(members * new_share)
        self.members: list[ShopMember] = []
        self.newcomers: list[ShopMember] = []
        for m in range(members):
            mid = f"m{seed}-{m:05d}"
            joined = self.start + dt.timedelta(seconds=rng.uniform(0, days * 86400 * 0.5))
            quiet = None
            if rng.random() < quiet_share:
                quiet = joined + dt.timedelta(days=rng.uniform(3, days * 0.5))
            member = ShopMember(
                mid,
                f"{mid}@example.com",
                f"+1555{m:07d}",
                rng.choice(TIMEZONES),
                joined,
                quiet,
            )
            (self.newcomers if m >= members - n_new else self.members).append(member)
        self.per_member = max(1, events // max(len(self.members), 1))
        self.by_id = {m.id: m for m in [*self.members, *self.newcomers]}
        self._history: list[ShopEvent] | None = None

    def history(self) -> list[ShopEvent]:
        """The past, in time order."""
        if self._history is None:
            self._history = sorted(self._generate(), key=lambda e: (e.occurred_at, e.event_id))
        return self._history

    def _generate(self) -> Iterator[ShopEvent]:
        for member in self.members:
            rng = random.Random(f"{self.seed}/{member.id}")
            yield member.registration()
            stop = min(self.end, member.quiet_from or self.end)
            t = member.joined
            # Visits spread over the member's whole time with the shop.
            mean_gap = max((self.end - member.joined).total_seconds() / 3600 / self.per_member, 1)
            for n in range(1, self.per_member + 1):
                t += dt.timedelta(hours=rng.expovariate(1 / mean_gap))
                if t >= stop:
                    break
                sku, price = rng.choice(PRODUCTS)
                roll = rng.random()
                eid = f"{member.id}-{n}"
                cart = f"{member.id}-cart-{n // 10}"
                if roll < 0.6:
                    yield ShopEvent(eid, "page.viewed", member.id, t, {"url": f"/products/{sku}"})
                elif roll < 0.85:
                    yield ShopEvent(
                        eid,
                        "cart.updated",
                        member.id,
                        t,
                        {"cart_id": cart, "items": [{"sku": sku, "qty": 1, "price": price}]},
                    )
                else:
                    yield ShopEvent(
                        eid,
                        "order.placed",
                        member.id,
                        t,
                        {"order_id": f"o-{eid}", "total": price, "cart_id": cart},
                    )

    def last_activity(self) -> dict[str, dt.datetime]:
        last: dict[str, dt.datetime] = {}
        for e in self.history():
            last[e.member_id] = max(last.get(e.member_id, e.occurred_at), e.occurred_at)
        return last

    def quiet_since(self, days: float, now: dt.datetime) -> list[ShopMember]:
        """Members with no activity in the `days` before `now` (the win-back audience)."""
        cutoff = now - dt.timedelta(days=days)
        last = self.last_activity()
        return [m for m in self.members if last.get(m.id, m.joined) < cutoff]

    def active_since(self, days: float, now: dt.datetime) -> list[ShopMember]:
        cutoff = now - dt.timedelta(days=days)
        last = self.last_activity()
        return [m for m in self.members if last.get(m.id, m.joined) >= cutoff]


def generate_shop(
    members: int, events: int, *, seed: int = 7, days: int = 60, end: dt.datetime | None = None
) -> Iterator[ShopEvent]:
    """The shop's history, in time order."""
    yield from Shop(members, events, seed=seed, days=days, end=end, new_share=0.0).history()
