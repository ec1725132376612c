"""The member profile projection: folding, merges, exactly-once, rebuild."""

from __future__ import annotations

import datetime as dt

from journeyman.engine.core.settings import Settings
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.profiles import ProfileProjector, get_profile
from journeyman.event_store import PostgresEventStore

from .helpers import T0, event

NOW = T0 + dt.timedelta(days=40)


def projector(store: PostgresEventStore, settings: Settings) -> ProfileProjector:
    return ProfileProjector(store, settings, clock=lambda: NOW, batch_size=7)


def hourly_orders(n: int, *, members: int) -> list[dict]:
    """`n` orders an hour apart, totals 0 to n-1, spread over `members` members."""
    hour = dt.timedelta(hours=1)
    return [
        event(
            "order.placed",
            email=f"u{i % members}@example.com",
            at=T0 + i * hour,
            properties={"total": i},
        )
        for i in range(n)
    ]


async def rows(store: PostgresEventStore) -> list[dict]:
    async with store.pool.acquire() as c:
        return [dict(r) for r in await c.fetch("SELECT * FROM member_profiles ORDER BY 1")]


async def test_profile_folds_orders_consent_traits_and_suppression(
    ingestor: Ingestor, store: PostgresEventStore, settings: Settings
) -> None:
    day = dt.timedelta(days=1)
    result = await ingestor.ingest_raw(
        [
            event(
                "member.registered",
                id="m1",
                at=T0,
                properties={
                    "timezone": "Europe/Paris",
                    "locale": "fr-FR",
                    "traits": {"plan": "gold"},
                    "consent": {"email:marketing": True},
                },
            ),
            event("page.viewed", id="m1", at=T0 + day),
            event("order.placed", id="m1", at=T0 + 2 * day, properties={"total": 120.5}),
            event("order.placed", id="m1", at=T0 + 3 * day, properties={"revenue": 80}),
            event("order.refunded", id="m1", at=T0 + 4 * day, properties={"amount": 20}),
            event(
                "member.consent_changed",
                id="m1",
                at=T0 + 5 * day,
                properties={"channel": "sms", "purpose": "marketing", "granted": True},
            ),
            event("member.unsubscribed", id="m1", at=T0 + 6 * day, properties={"channel": "email"}),
            event("message.bounced", id="m1", at=T0 + 7 * day, properties={"channel": "email"}),
            event(
                "member.identified", id="m1", at=T0 + 8 * day, properties={"timezone": "Not/AZone"}
            ),
        ]
    )
    p = projector(store, settings)
    assert await p.run_until_caught_up() == 9
    m1 = result.results[0].member_id
    assert m1 is not None
    profile = await get_profile(store.pool, m1, now=NOW, settings=settings)
    assert profile is not None
    assert profile.first_seen_at == T0 and profile.last_seen_at == T0 + 8 * day
    assert profile.last_activity_at == T0 + 3 * day
    assert profile.order_count == 2 and profile.monetary_value == 180.5
    assert profile.last_order_at == T0 + 3 * day
    assert profile.consent == {"email:marketing": False, "sms:marketing": True}
    assert profile.suppressed == {"email": "bounce"}
    assert (profile.timezone, profile.locale) == ("Europe/Paris", "fr-FR")
    assert profile.traits == {"plan": "gold"}
    # 37 days idle: at risk (30) but not lapsed (60); recency 37 days -> 3; 2 orders -> 2.
    assert profile.lifecycle_stage == "at_risk"
    assert (profile.recency_score, profile.frequency_score, profile.monetary_score) == (3, 2, 3)
    later = await get_profile(store.pool, m1, now=NOW + dt.timedelta(days=200))
    assert later is not None and later.lifecycle_stage == "churned"
    assert await get_profile(store.pool, "nobody") is None


async def test_projection_is_exactly_once_and_rebuild_is_identical(
    ingestor: Ingestor, store: PostgresEventStore, settings: Settings
) -> None:
    batch = hourly_orders(30, members=5)
    await ingestor.ingest_raw(batch[:12])
    p = projector(store, settings)
    await p.run_until_caught_up()
    await ingestor.ingest_raw(batch[12:])
    # Two projectors racing over the same checkpoint still apply each event once.
    import asyncio

    other = projector(store, settings)
    await asyncio.gather(p.run_until_caught_up(), other.run_until_caught_up())
    live = await rows(store)
    assert sum(r["order_count"] for r in live) == 30
    assert sum(r["monetary_value"] for r in live) == sum(range(30))
    await p.rebuild()
    assert await rows(store) == live


async def test_merge_combines_profiles_into_the_survivor(
    ingestor: Ingestor, store: PostgresEventStore, settings: Settings
) -> None:
    await ingestor.ingest_raw(
        [event("order.placed", email="a@example.com", properties={"total": 10})]
    )
    await ingestor.ingest_raw(
        [
            event(
                "order.placed",
                device_id="d1",
                at=T0 + dt.timedelta(days=1),
                properties={"total": 5},
            )
        ]
    )
    p = projector(store, settings)
    await p.run_until_caught_up()
    res = await ingestor.ingest_raw([event("app.opened", email="a@example.com", device_id="d1")])
    survivor = res.results[0].member_id
    await p.run_until_caught_up()
    async with store.pool.acquire() as c:
        loser = await c.fetchval("SELECT member_id FROM members WHERE merged_into = $1", survivor)
    profile = await get_profile(store.pool, loser, now=NOW, settings=settings)
    assert profile is not None and profile.member_id == survivor
    assert profile.order_count == 2 and profile.monetary_value == 15
    live = await rows(store)
    await p.rebuild()
    assert await rows(store) == live


async def test_events_stored_while_a_batch_is_read_ahead_are_applied_once(
    ingestor: Ingestor, store: PostgresEventStore, settings: Settings
) -> None:
    batch = hourly_orders(40, members=3)
    await ingestor.ingest_raw(batch[:20])
    p = projector(store, settings)
    assert await p.run_once() == 7  # a full batch: the next one is read ahead
    assert p._prefetch is not None
    await ingestor.ingest_raw(batch[20:])  # stored while the read-ahead is pending
    await p.run_until_caught_up()
    live = await rows(store)
    assert sum(r["order_count"] for r in live) == 40
    assert sum(r["monetary_value"] for r in live) == sum(range(40))
    await p.rebuild()
    assert await rows(store) == live
