"""Segment membership from the profile projection: entries and exits are recorded once, as a
membership row and an event on the member's stream, and a rebuild records nothing new."""

from __future__ import annotations

import asyncio
import datetime as dt

from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.core.settings import Settings
from journeyman.engine.profiles import ProfileProjector, get_profile
from journeyman.engine.segments import Segment
from journeyman.engine.segments.membership import MARK, apply_profiles
from journeyman.event_store import START, NewEvent, PostgresEventStore

from .conftest import T0
from .helpers import all_segment_events, changes, members, order, segment_events

NOW = T0 + dt.timedelta(days=2)
BIG = Segment("big_spender", when=lambda p: p.monetary_value >= 100, description="100+ spent")
REPEAT = Segment("repeat", when=lambda p: p.order_count >= 2)


def projector(
    store: PostgresEventStore, settings: Settings, *, segments=(BIG, REPEAT), batch_size=1000
) -> ProfileProjector:
    return ProfileProjector(
        store, settings, clock=lambda: NOW, batch_size=batch_size, segments=segments
    )


async def test_a_profile_change_enters_the_member_once(
    store: PostgresEventStore, settings: Settings
) -> None:
    await order(store, "m1", 60, T0)
    await order(store, "m2", 10, T0)
    p = projector(store, settings)
    await p.run_until_caught_up()
    assert await changes(store, "m1") == [] and await members(store) == set()

    await order(store, "m1", 70, T0 + dt.timedelta(hours=1))
    await p.run_until_caught_up()
    assert await changes(store, "m1") == [
        ("segment.entered", "big_spender"),
        ("segment.entered", "repeat"),
    ]
    assert await members(store) == {("big_spender", "m1"), ("repeat", "m1")}
    entered_at = await store.pool.fetchval(
        "SELECT entered_at FROM segment_memberships WHERE segment = 'big_spender'"
    )
    assert entered_at == NOW
    [first, _] = await segment_events(store, "m1")
    assert first.occurred_at == NOW and first.metadata == {"source": "segments"}
    assert first.event_id == "segment.entered/big_spender/1/m1"  # after version 1 of the stream
    assert await changes(store, "m2") == []

    # The projector folded its own events too, and they changed nothing more; another
    # projector over the same store finds nothing to do.
    assert await projector(store, settings).run_until_caught_up() == 0
    # The segment events do not make the member "seen" later than their last real event.
    profile = await get_profile(store.pool, "m1", now=NOW, settings=settings)
    assert profile is not None and profile.last_seen_at == T0 + dt.timedelta(hours=1)
    assert await all_segment_events(store) == 2


async def test_evaluating_the_same_profile_again_appends_nothing(
    store: PostgresEventStore, settings: Settings
) -> None:
    await order(store, "m1", 150, T0)
    await projector(store, settings).run_until_caught_up()
    assert await changes(store, "m1") == [("segment.entered", "big_spender")]
    profile = await get_profile(store.pool, "m1", now=NOW, settings=settings)
    assert profile is not None
    # A redelivered evaluation (same profile, same segments) finds the row and stops there.
    for _ in range(2):
        async with store.pool.acquire() as conn, conn.transaction():
            result = await apply_profiles(conn, store, [BIG, REPEAT], {"m1": profile}, now=NOW)
        assert result.entered == [] and result.exited == []
    assert await changes(store, "m1") == [("segment.entered", "big_spender")]


async def test_two_evaluations_racing_append_one_entry(
    store: PostgresEventStore, settings: Settings
) -> None:
    profile = MemberProfile(member_id="m9", order_count=1, monetary_value=500.0)
    first = await store.pool.acquire()
    second = await store.pool.acquire()
    try:
        tx1 = first.transaction()
        await tx1.start()
        one = await apply_profiles(first, store, [BIG], {"m9": profile}, now=NOW)
        assert one.entered == [("big_spender", "m9")]

        async def other() -> list[tuple[str, str]]:
            async with second.transaction():
                res = await apply_profiles(second, store, [BIG], {"m9": profile}, now=NOW)
            return res.entered

        # The second evaluation read no row either (the first is not committed): its insert
        # waits for the first transaction, then finds the row and appends nothing.
        racing = asyncio.create_task(other())
        await asyncio.sleep(0.3)
        assert not racing.done()
        await tx1.commit()
        assert await asyncio.wait_for(racing, 10) == []
    finally:
        await store.pool.release(first)
        await store.pool.release(second)
    assert await changes(store, "m9") == [("segment.entered", "big_spender")]


async def test_leaving_appends_exited_and_coming_back_enters_again(
    store: PostgresEventStore, settings: Settings
) -> None:
    p = projector(store, settings, segments=[BIG])
    await order(store, "m1", 150, T0)
    await p.run_until_caught_up()
    await order(store, "m1", 100, T0 + dt.timedelta(hours=1), type="order.refunded")
    await p.run_until_caught_up()
    assert await changes(store, "m1") == [
        ("segment.entered", "big_spender"),
        ("segment.exited", "big_spender"),
    ]
    assert await members(store) == set()
    await order(store, "m1", 80, T0 + dt.timedelta(hours=2))
    await p.run_until_caught_up()
    events = await segment_events(store, "m1")
    assert [e.type for e in events] == ["segment.entered", "segment.exited", "segment.entered"]
    assert len({e.event_id for e in events}) == 3
    assert await members(store) == {("big_spender", "m1")}


async def test_a_merged_member_leaves_and_the_survivor_enters(
    store: PostgresEventStore, settings: Settings
) -> None:
    p = projector(store, settings, segments=[BIG])
    await order(store, "loser", 120, T0)
    await order(store, "survivor", 30, T0)
    await p.run_until_caught_up()
    assert await members(store) == {("big_spender", "loser")}
    await store.append(
        "member-survivor",
        [NewEvent("member.merged", {"survivor": "survivor", "merged": "loser"}, occurred_at=T0)],
    )
    await p.run_until_caught_up()
    assert await changes(store, "loser") == [
        ("segment.entered", "big_spender"),
        ("segment.exited", "big_spender"),
    ]
    assert await changes(store, "survivor") == [("segment.entered", "big_spender")]
    assert await members(store) == {("big_spender", "survivor")}


async def test_a_test_that_raises_leaves_membership_alone(
    store: PostgresEventStore, settings: Settings
) -> None:
    def fragile(p: MemberProfile) -> bool:
        if p.order_count > 1:
            raise KeyError("tier")
        return p.order_count == 1

    broken = Segment("fragile", when=fragile)
    p = projector(store, settings, segments=[broken, BIG])
    await order(store, "m1", 150, T0)
    await p.run_until_caught_up()
    assert await members(store) == {("fragile", "m1"), ("big_spender", "m1")}
    await order(store, "m1", 5, T0 + dt.timedelta(hours=1))
    await p.run_until_caught_up()  # the projection goes on
    assert await members(store) == {("fragile", "m1"), ("big_spender", "m1")}
    profile = await get_profile(store.pool, "m1", now=NOW, settings=settings)
    assert profile is not None and profile.order_count == 2


async def test_without_segments_the_projector_appends_nothing(
    store: PostgresEventStore, settings: Settings
) -> None:
    await order(store, "m1", 150, T0)
    assert await projector(store, settings, segments=()).run_until_caught_up() == 1
    assert await all_segment_events(store) == 0 and await members(store) == set()
    assert await store.load_checkpoint(MARK) == START


async def test_by_default_the_projector_evaluates_the_plugins_segments(
    store: PostgresEventStore, settings: Settings
) -> None:
    # The built-in `vip`: RFM recency, frequency and monetary scores all 4 or more.
    for i in range(5):
        await order(store, "best", 120, T0 + dt.timedelta(hours=i))
    await order(store, "casual", 20, T0)
    await ProfileProjector(store, settings, clock=lambda: NOW).run_until_caught_up()
    assert await changes(store, "best") == [("segment.entered", "vip")]
    assert await changes(store, "casual") == []


async def test_rebuild_appends_nothing(store: PostgresEventStore, settings: Settings) -> None:
    hour = dt.timedelta(hours=1)
    # m1 enters, leaves and enters again; m2 enters; m3 never does.
    await order(store, "m1", 150, T0)
    await order(store, "m2", 40, T0)
    await order(store, "m3", 10, T0)
    p = projector(store, settings, batch_size=2)
    await p.run_until_caught_up()
    await order(store, "m1", 100, T0 + hour, type="order.refunded")
    await order(store, "m2", 70, T0 + hour)
    await p.run_until_caught_up()
    await order(store, "m1", 60, T0 + 2 * hour)
    await p.run_until_caught_up()
    before = await all_segment_events(store)
    assert await changes(store, "m1") == [
        ("segment.entered", "big_spender"),
        ("segment.exited", "big_spender"),
        ("segment.entered", "big_spender"),
        ("segment.entered", "repeat"),
    ]
    rows = await members(store)
    assert rows == {
        ("big_spender", "m1"),
        ("repeat", "m1"),
        ("big_spender", "m2"),
        ("repeat", "m2"),
    }

    # One event per batch: replayed, m1 would pass through every intermediate profile.
    await projector(store, settings, batch_size=1).rebuild(batch_size=1)
    assert await all_segment_events(store) == before
    assert await members(store) == rows

    # After the rebuild, changes are recorded again.
    await order(store, "m3", 95, T0 + 3 * hour)
    await p.run_until_caught_up()
    assert await changes(store, "m3") == [
        ("segment.entered", "big_spender"),
        ("segment.entered", "repeat"),
    ]
