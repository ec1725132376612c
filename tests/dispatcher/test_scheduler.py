"""The inactivity scheduler on the dev server (the time-skipping server has no Schedules)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from dispatch_testkit import FAST, eventually, journeys, types_of, worker_for
from journeyman.engine.activities import instances
from journeyman.engine.contracts import ScanRequest, ScanResult
from journeyman.engine.profiles import ProfileProjector
from journeyman.engine.routing.scheduler import ensure_schedule
from journeyman.event_store import NewEvent
from journeyman.workflows.scan import SCAN_WORKFLOW

pytestmark = pytest.mark.devserver


async def _profiles(store, rows: list[tuple[str, float]]) -> None:
    """Each member viewed a page `d` days ago; the profile projection folds it (and keeps
    the scan's due moments)."""
    now = dt.datetime.now(dt.UTC)
    for m, d in rows:
        at = now - dt.timedelta(days=d)
        await store.append(f"member-{m}", [NewEvent("page.viewed", {}, occurred_at=at)])
    await ProfileProjector(store).run_until_caught_up()


async def test_scan_starts_winback_only_for_members_who_are_due(temporal_dev, store) -> None:
    client = temporal_dev.client
    due = [f"due{i}" for i in range(5)]
    await _profiles(store, [(m, 40) for m in due] + [("fresh", 3), ("edge", 29)])
    await store.pool.execute(
        "INSERT INTO member_profiles (member_id, last_activity_at, erased) "
        "VALUES ('gone', now() - interval '90 days', true)"
    )
    found = journeys("winback")
    slow = {"winback": {"follow_up_delay": 60}}
    async with worker_for(client, store, found, slow) as tq:
        first: ScanResult = await client.execute_workflow(
            SCAN_WORKFLOW,
            ScanRequest(page_size=2),
            id=f"scan-{uuid.uuid4().hex[:6]}",
            task_queue=tq,
            result_type=ScanResult,
        )
        assert (first.started, first.examined) == (5, 5)
        assert first.pages == 3  # pages of two, heartbeating the cursor after each
        for m in due:
            await eventually(lambda m=m: _entered(store, m), what=f"win-back for {m}")
        # A second scan reads nobody: their runs block them until they end.
        again: ScanResult = await client.execute_workflow(
            SCAN_WORKFLOW,
            ScanRequest(page_size=2),
            id=f"scan-{uuid.uuid4().hex[:6]}",
            task_queue=tq,
            result_type=ScanResult,
        )
        assert (again.started, again.examined) == (0, 0)
        for m in due:
            await client.get_workflow_handle(f"journey/winback/{m}").terminate()
    for m in ("fresh", "edge", "gone"):
        assert not {"journey.entered", "message.sent"} & set(await types_of(store, m))
    rows = [await instances.get_instance(store.pool, f"journey/winback/{m}") for m in due]
    assert all(r is not None and r.entries == 1 for r in rows)


async def _entered(store, member: str) -> bool:
    return "journey.entered" in await types_of(store, member)


async def test_schedule_runs_the_scan(temporal_dev, store) -> None:
    client = temporal_dev.client
    await _profiles(store, [("sched1", 45)])
    found = journeys("winback")
    async with worker_for(client, store, found, FAST) as tq:
        schedule_id = f"scan-{uuid.uuid4().hex[:6]}"
        assert (
            await ensure_schedule(
                client, task_queue=tq, every=dt.timedelta(hours=1), schedule_id=schedule_id
            )
            == "created"
        )
        assert (
            await ensure_schedule(
                client, task_queue=tq, every=dt.timedelta(minutes=30), schedule_id=schedule_id
            )
            == "updated"
        )
        handle = client.get_schedule_handle(schedule_id)
        desc = await handle.describe()
        assert desc.schedule.spec.intervals[0].every == dt.timedelta(minutes=30)
        await handle.trigger()
        await eventually(
            lambda: _has_exit(store, "sched1"), timeout=20, what="win-back run by the schedule"
        )
        await handle.delete()
    assert "message.sent" in await types_of(store, "sched1")


async def _has_exit(store, member: str) -> bool:
    return "journey.exited" in await types_of(store, member)
