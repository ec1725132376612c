"""The analytics projection gives the numbers the events give, whether a report reads it
caught up, half-way or not at all; old sends without an entry id are credited to the right
entry; a bad event is parked, never a halt."""

from __future__ import annotations

import datetime as dt

import pytest
from journeyman.engine.analytics.projector import NAME, JourneyStatsProjector
from journeyman.engine.analytics.report import ProjectionBehind, journey_stats
from journeyman.engine.core.settings import Settings
from journeyman.engine.deadletters.actions import retry
from journeyman.event_store import NewEvent, PostgresEventStore
from journeyman.event_store.deadletters import list_dead_letters
from test_journey_stats import T0, entry


async def seed(store: PostgresEventStore) -> None:
    await entry(
        store, "a", "e1", sent=[("d1", "email")], delivered=["d1"], clicked=["d1"], converted=30.0
    )
    await entry(store, "b", "e2", sent=[("d2", "email"), ("d3", "sms")], delivered=["d2"])
    await entry(store, "c", "e3", variant="urgent", sent=[("d4", "sms")], converted=10.0)
    await entry(store, "d", "e4", holdout=True)
    await entry(store, "e", "e5", holdout=True, converted=5.0)
    await store.append(
        "member-e",
        [
            NewEvent(
                "message.suppressed",
                {"journey": "cart_recovery", "step": "coupon", "reason": "frequency cap"},
                event_id="sup1",
            )
        ],
    )


def as_json(stats: list) -> list[dict]:
    return [s.as_dict() for s in stats]


async def test_reports_agree_before_during_and_after_projection(store: PostgresEventStore) -> None:
    await seed(store)
    from_events = as_json(await journey_stats(store.pool))
    projector = JourneyStatsProjector(store, Settings(), batch_size=7)
    assert await projector.run_once() == 7  # part of the history projected
    assert as_json(await journey_stats(store.pool)) == from_events
    await projector.run_until_caught_up()
    assert as_json(await journey_stats(store.pool)) == from_events
    # later events are counted on top of the projection, then by it
    await entry(store, "f", "e6", sent=[("d6", "email")], delivered=["d6"], converted=7.5)
    on_top = as_json(await journey_stats(store.pool))
    assert on_top[0]["total"]["entered"] == 6 and on_top[0]["total"]["converted"] == 4
    await projector.run_until_caught_up()
    assert as_json(await journey_stats(store.pool)) == on_top
    assert as_json(await journey_stats(store.pool, "cart_recovery")) == on_top
    # a rebuild from the store gives the same again
    await projector.rebuild()
    assert as_json(await journey_stats(store.pool)) == on_top
    stats = on_top[0]
    assert stats["outcomes"] == {"suppressed": 1}
    assert stats["channels"]["email"] == {"sent": 3, "delivered": 3, "clicked": 1}
    assert stats["time_to_convert_seconds"]["n"] == 3


async def test_each_count_lists_its_entries_and_their_events(store: PostgresEventStore) -> None:
    await seed(store)
    await JourneyStatsProjector(store, Settings()).run_until_caught_up()
    converted = await store.pool.fetch(
        "SELECT entry_id, revenue FROM journey_entries WHERE journey = 'cart_recovery' "
        "AND converted AND NOT holdout ORDER BY entry_id"
    )
    assert [(r["entry_id"], float(r["revenue"])) for r in converted] == [
        ("e1", 30.0),
        ("e3", 10.0),
    ]
    position = await store.pool.fetchval(
        "SELECT entered_position FROM journey_entries WHERE entry_id = 'e1'"
    )
    event = await store.read_event(position)
    assert event is not None and event.event_id == "e1-in"


def _sent(did: str, workflow_id: str, at: dt.datetime) -> NewEvent:
    """`message.sent` as recorded before sends named their entry."""
    data = {"journey": "cart_recovery", "workflow_id": workflow_id, "delivery_id": did}
    return NewEvent("message.sent", {**data, "channel": "email"}, event_id=did, occurred_at=at)


def _entered(entry_id: str, workflow_id: str, at: dt.datetime) -> NewEvent:
    data = {"journey": "cart_recovery", "workflow_id": workflow_id, "entry_id": entry_id}
    return NewEvent("journey.entered", data, event_id=f"{entry_id}-in", occurred_at=at)


async def test_an_old_send_without_entry_id_is_credited_to_its_own_run(
    store: PostgresEventStore,
) -> None:
    """The same workflow id entered twice (re-entry); each old send belongs to the entry
    that was current when it was sent, not to both."""
    wf = "journey/cart_recovery/m1"
    await store.append(
        "member-m1",
        [
            _entered("r1", wf, T0),
            _sent("old-1", wf, T0 + dt.timedelta(hours=1)),
            _entered("r2", wf, T0 + dt.timedelta(days=2)),
            _entered("r3", wf, T0 + dt.timedelta(days=4)),
            _sent("old-3", wf, T0 + dt.timedelta(days=4, hours=1)),
        ],
    )
    (before,) = await journey_stats(store.pool)
    assert (before.total.entered, before.total.messaged) == (3, 2)
    await JourneyStatsProjector(store, Settings()).run_until_caught_up()
    (after,) = await journey_stats(store.pool)
    assert (after.total.entered, after.total.messaged) == (3, 2)
    rows = await store.pool.fetch("SELECT entry_id, sent FROM journey_entries ORDER BY entry_id")
    assert [(r["entry_id"], r["sent"]) for r in rows] == [("r1", 1), ("r2", 0), ("r3", 1)]


async def test_a_bad_event_is_parked_and_the_projection_goes_on(store: PostgresEventStore) -> None:
    await entry(store, "a", "e1", sent=[("d1", "email")])
    bad_value = NewEvent(
        "journey.converted",
        {"journey": "cart_recovery", "entry_id": "e1", "value": "lots", "at": T0.isoformat()},
        event_id="bad-value",
    )
    await store.append("member-a", [bad_value])
    async with store.pool.acquire() as c:  # data the driver cannot read back: a huge integer
        await c.execute(
            "INSERT INTO events (stream_id, stream_version, event_id, type, data, metadata, "
            "occurred_at) VALUES ('member-a', 99, 'huge', 'message.clicked', "
            "('{\"delivery_id\": ' || repeat('7', 5000) || '}')::jsonb, '{}', now())"
        )
    await entry(store, "b", "e2", sent=[("d2", "sms")], converted=3.0)
    # the report skips what it cannot read, and answers
    (stats,) = await journey_stats(store.pool)
    assert (stats.total.entered, stats.total.converted) == (2, 1)

    projector = JourneyStatsProjector(store, Settings(dead_letter_attempts=2), batch_size=100)
    await projector.run_until_caught_up()
    parked = await list_dead_letters(store.pool, consumer=NAME)
    assert sorted(d.type for d in parked) == ["journey.converted", "message.clicked"]
    assert any("lots" in d.error for d in parked)
    (stats,) = await journey_stats(store.pool)
    assert (stats.total.entered, stats.total.messaged, stats.total.converted) == (2, 2, 1)
    assert stats.channels == {
        "email": {"sent": 1, "delivered": 0, "clicked": 0},
        "sms": {"sent": 1, "delivered": 0, "clicked": 0},
    }
    # the parked event goes back to this projection on retry (it fails again: still parked)
    (bad,) = [d for d in parked if d.type == "journey.converted"]
    outcome = await retry(store, Settings(), bad.id)
    assert not outcome.ok and "lots" in outcome.message


async def test_a_report_far_behind_the_store_says_so_instead_of_folding_it_all(
    store: PostgresEventStore,
) -> None:
    await seed(store)
    with pytest.raises(ProjectionBehind, match="more than 5 events behind"):
        await journey_stats(store.pool, max_unprojected=5)
    await JourneyStatsProjector(store, Settings()).run_until_caught_up()
    (stats,) = await journey_stats(store.pool, max_unprojected=5)
    assert stats.total.entered == 5


async def _analyzed(store: PostgresEventStore) -> int:
    return await store.pool.fetchval(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'journey_entries'"
    )


async def test_a_long_catch_up_refreshes_the_planners_statistics(store: PostgresEventStore) -> None:
    """Plans made for the near-empty tables of a catch-up's start read whole tables per batch
    once they have grown (a 100,000-member catch-up ran at a third of its speed)."""
    await seed(store)
    before = await _analyzed(store)
    await JourneyStatsProjector(store, Settings()).run_until_caught_up()
    assert await _analyzed(store) == before  # a short one leaves statistics to autovacuum
    await entry(store, "f", "e6", sent=[("d6", "email")], delivered=["d6"], converted=7.5)
    await JourneyStatsProjector(store, Settings(), analyze_after=3).run_until_caught_up()
    assert await _analyzed(store) == before + 1
