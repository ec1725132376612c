"""The periodic refresh: segments whose test depends on time alone (recency, lifecycle stage)
are re-evaluated for every member, by the hourly scan."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import ScanRequest, ScanResult, SegmentRefreshRequest
from journeyman.engine.core.settings import Settings
from journeyman.engine.profiles import ProfileProjector
from journeyman.engine.profiles.segment_refresh import refresh, refresh_due
from journeyman.engine.runtime.worker import build_worker
from journeyman.engine.segments import Segment
from journeyman.event_store import NewEvent, PostgresEventStore
from journeyman.workflows.builtin_plugin import LAPSED_VIP, VIP
from journeyman.workflows.scan import SCAN_WORKFLOW
from temporalio.testing import ActivityEnvironment

from .conftest import T0
from .helpers import all_segment_events, changes, members, order

NOW = T0 + dt.timedelta(days=2)
AT_RISK = Segment("at_risk", when=lambda p: p.lifecycle_stage == "at_risk")
SEGMENTS = [VIP, LAPSED_VIP, AT_RISK]


async def _setup(store: PostgresEventStore, settings: Settings) -> None:
    """`best` becomes a VIP (five orders, 600 spent, all recent); `casual` ordered once and
    `quiet` viewed a page, also on day 0. Nothing happens after that."""
    for i in range(5):
        await order(store, "best", 120, T0 + dt.timedelta(hours=i))
    await store.append("member-quiet", [NewEvent("page.viewed", {}, occurred_at=T0)])
    await order(store, "casual", 20, T0)
    await ProfileProjector(
        store, settings, clock=lambda: NOW, segments=SEGMENTS
    ).run_until_caught_up()
    assert await members(store) == {("vip", "best")}


async def test_refresh_catches_what_time_alone_changed(
    store: PostgresEventStore, settings: Settings
) -> None:
    await _setup(store, settings)
    # Nothing happened since: at day 2 the refresh finds nothing to change.
    same = await refresh(store, SEGMENTS, settings=settings, now=NOW, page_size=2)
    assert (same.examined, same.pages, same.changes.entered, same.changes.exited) == (3, 2, [], [])

    day40 = T0 + dt.timedelta(days=40)
    later = await refresh(store, SEGMENTS, settings=settings, now=day40, page_size=2)
    # Day 40: the last order is 40 days old (recency 3), so `best` is no longer a VIP, not yet
    # a lapsed one (90 days); everyone has been idle for 40 days: at risk.
    assert later.changes.exited == [("vip", "best")]
    assert sorted(later.changes.entered) == [
        ("at_risk", "best"),
        ("at_risk", "casual"),
        ("at_risk", "quiet"),
    ]
    day100 = T0 + dt.timedelta(days=100)
    await refresh(store, SEGMENTS, settings=settings, now=day100, page_size=2)
    assert await changes(store, "best") == [
        ("segment.entered", "vip"),
        ("segment.exited", "vip"),
        ("segment.entered", "at_risk"),
        ("segment.exited", "at_risk"),  # idle 100 days: lapsed
        ("segment.entered", "lapsed_vip"),
    ]
    assert await changes(store, "quiet") == [
        ("segment.entered", "at_risk"),
        ("segment.exited", "at_risk"),
    ]
    assert await changes(store, "casual") == await changes(store, "quiet")
    assert await members(store) == {("lapsed_vip", "best")}
    # Run again at the same time: everything is already recorded.
    before = await all_segment_events(store)
    again = await refresh(store, SEGMENTS, settings=settings, now=day100, page_size=2)
    assert again.changes.entered == again.changes.exited == []
    assert await all_segment_events(store) == before


async def test_refresh_does_not_judge_a_replaying_projection(
    store: PostgresEventStore, settings: Settings
) -> None:
    await _setup(store, settings)
    day100 = T0 + dt.timedelta(days=100)
    rebuilding = ProfileProjector(store, settings, clock=lambda: NOW, segments=SEGMENTS)
    rebuilding.batch_size = 1
    # What `rebuild` does first, then one event replayed: profiles are half-way.
    async with store.pool.acquire() as c:
        await c.execute("DELETE FROM member_profiles")
        await c.execute("DELETE FROM subscription_checkpoints WHERE name = 'member_profiles'")
    assert await rebuilding.run_once() == 1
    halfway = await refresh(store, SEGMENTS, settings=settings, now=day100)
    assert halfway.behind and halfway.examined == 0
    assert await members(store) == {("vip", "best")}
    await rebuilding.run_until_caught_up()
    done = await refresh(store, SEGMENTS, settings=settings, now=day100)
    assert not done.behind and done.examined == 3
    assert await members(store) == {("lapsed_vip", "best")}


async def test_the_full_refresh_activity_resumes_after_its_heartbeated_cursor(
    store: PostgresEventStore, settings: Settings
) -> None:
    await _setup(store, settings)
    acts = JourneyActivities(store, segments=SEGMENTS, settings=settings)
    env = ActivityEnvironment()
    # A retried attempt: the previous one got through `best` (ids sort best, casual, quiet).
    env.info = dataclasses.replace(
        env.info, heartbeat_details=[{"cursor": "best", "result": {"examined": 1, "pages": 1}}]
    )
    beats: list[dict] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    request = SegmentRefreshRequest(page_size=1, now=T0 + dt.timedelta(days=40), full=True)
    result = await env.run(acts.refresh_segments, request)
    assert (result.examined, result.pages, result.entered, result.exited) == (3, 4, 2, 0)
    assert [b["cursor"] for b in beats] == ["casual", "quiet", "quiet"]
    assert await members(store) == {("vip", "best"), ("at_risk", "casual"), ("at_risk", "quiet")}


async def test_the_scan_workflow_refreshes_segments(
    temporal_env, store: PostgresEventStore, settings: Settings
) -> None:
    await _setup(store, settings)
    client = temporal_env.client
    acts = JourneyActivities(store, client=client, segments=SEGMENTS, settings=settings)
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, store, task_queue=task_queue, journeys={}, activities=acts):
        result = await client.execute_workflow(
            SCAN_WORKFLOW,
            ScanRequest(now=T0 + dt.timedelta(days=40)),
            id=f"scan-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
            result_type=ScanResult,
        )
    assert result.segments is not None
    assert (result.segments.examined, result.segments.entered, result.segments.exited) == (
        3,
        3,
        1,
    )
    assert await changes(store, "best") == [
        ("segment.entered", "vip"),
        ("segment.exited", "vip"),
        ("segment.entered", "at_risk"),
    ]
    assert await members(store) == {
        ("at_risk", "best"),
        ("at_risk", "casual"),
        ("at_risk", "quiet"),
    }


async def test_a_time_based_entry_happens_without_a_full_refresh(
    store: PostgresEventStore, settings: Settings
) -> None:
    """Only members whose recency or lifecycle stage can have changed are read: here one of
    ten crosses the at-risk line (30 quiet days) and is the only profile the pass reads."""
    for i in range(10):
        at = T0 + dt.timedelta(days=i)
        await store.append(f"member-m{i}", [NewEvent("page.viewed", {}, occurred_at=at)])
    clock = T0 + dt.timedelta(days=10)
    await ProfileProjector(
        store, settings, clock=lambda: clock, segments=[AT_RISK]
    ).run_until_caught_up()
    # Day 25: everyone has stopped being new (14 days after first seen): each is read once.
    day25 = await refresh_due(store, [AT_RISK], settings=settings, now=T0 + dt.timedelta(days=25))
    assert (day25.examined, day25.changes.entered) == (10, [])
    day30 = T0 + dt.timedelta(days=30, hours=12)
    later = await refresh_due(store, [AT_RISK], settings=settings, now=day30)
    assert later.examined == 1
    assert later.changes.entered == [("at_risk", "m0")]
    assert await changes(store, "m0") == [("segment.entered", "at_risk")]
    assert await members(store) == {("at_risk", "m0")}
    again = await refresh_due(store, [AT_RISK], settings=settings, now=day30)
    assert again.examined == 0
