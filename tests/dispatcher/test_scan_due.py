"""The inactivity scan reads only who is due (`inactivity_due`, by its partial index) and
starts each due member's run exactly once, in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from journeyman.engine.activities import instances
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import ScanRequest, ScanResult
from journeyman.engine.profiles import ProfileProjector, inactivity_due
from journeyman.event_store import NewEvent, PostgresEventStore
from journeyman.workflows.winback import Winback
from once_only_journey import OnceOnlyWinback
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput
from temporalio.testing import ActivityEnvironment

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class _CountStarts(Interceptor):
    """Counts the workflow starts that reach Temporal (the real client, the real server)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Outbound(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> Any:
                counter.ids.append(input.id)
                return await super().start_workflow(input)

        return Outbound(next)


def _counting_client(client: Client) -> tuple[Client, _CountStarts]:
    counter = _CountStarts()
    return Client(**{**client.config(), "interceptors": [counter]}), counter


async def _active(store: PostgresEventStore, members: dict[str, dt.datetime]) -> None:
    """Each member viewed a page at the given moment; the profile projection folds it."""
    for member, at in members.items():
        await store.append(f"member-{member}", [NewEvent("page.viewed", {}, occurred_at=at)])
    await ProfileProjector(store, clock=lambda: T0).run_until_caught_up()


def _acts(store: PostgresEventStore, client: Client, **kw: Any) -> JourneyActivities:
    return JourneyActivities(
        store,
        client=client,
        journeys={"winback": Winback, "once_only_winback_test": OnceOnlyWinback},
        task_queue=f"nobody-{uuid.uuid4().hex[:6]}",  # starts are recorded, never run
        **kw,
    )


async def _scan(acts: JourneyActivities, now: dt.datetime, **kw: Any) -> ScanResult:
    return await ActivityEnvironment().run(acts.scan_inactive, ScanRequest(now=now, **kw))


async def test_due_members_among_many_start_exactly_once(temporal_env, store) -> None:
    client, starts = _counting_client(temporal_env.client)
    due = [f"due-{i}-{uuid.uuid4().hex[:4]}" for i in range(7)]
    quiet = {m: T0 - 40 * DAY for m in due}
    recent = {f"recent-{i}-{uuid.uuid4().hex[:4]}": T0 - (i % 25) * DAY for i in range(120)}
    await _active(store, {**quiet, **recent})
    acts = _acts(store, client)

    first = await _scan(acts, T0, journeys=["winback"], page_size=3)
    assert (first.started, first.examined, first.pages) == (7, 7, 3)
    assert sorted(starts.ids) == sorted(f"journey/winback/{m}" for m in due)
    # The second scan reads nothing: the started members are blocked until their runs end.
    again = await _scan(acts, T0 + DAY, journeys=["winback"])
    assert (again.started, again.examined) == (0, 0)
    assert len(starts.ids) == 7
    for m in due:
        row = await instances.get_instance(store.pool, f"journey/winback/{m}")
        assert row is not None and row.running and row.entries == 1
        await client.get_workflow_handle(f"journey/winback/{m}").terminate()


async def test_overlapping_scans_start_each_member_once(temporal_env, store) -> None:
    client, starts = _counting_client(temporal_env.client)
    due = {f"o-{i}-{uuid.uuid4().hex[:4]}": T0 - 45 * DAY for i in range(40)}
    await _active(store, due)
    acts = _acts(store, client)
    results = await asyncio.gather(
        *(_scan(acts, T0, journeys=["winback"], page_size=4) for _ in range(3))
    )
    # One scan per journey at a time: the others skip it, or find nobody left.
    assert sum(r.started for r in results) == 40
    assert sum(r.examined for r in results) == 40
    assert all(r.busy in ([], ["winback"]) for r in results)
    assert sorted(starts.ids) == sorted(f"journey/winback/{m}" for m in due)
    for m in due:
        await client.get_workflow_handle(f"journey/winback/{m}").terminate()


async def test_a_finished_member_who_may_not_reenter_is_never_read_again(
    temporal_env, store
) -> None:
    client, starts = _counting_client(temporal_env.client)
    member = f"once-{uuid.uuid4().hex[:6]}"
    await _active(store, {member: T0 - 31 * DAY})
    acts = _acts(store, client)
    first = await _scan(acts, T0, journeys=["once_only_winback_test"])
    assert (first.examined, first.started) == (1, 1)
    wid = f"journey/once_only_winback_test/{member}"
    row = await instances.get_instance(store.pool, wid)
    assert row is not None and row.entry_id is not None
    await client.get_workflow_handle(wid).terminate()
    await instances.fold_exited(
        store.pool, workflow_id=wid, entry_id=row.entry_id, reason="done", converted=False, at=T0
    )
    for later in (T0 + DAY, T0 + 400 * DAY):
        result = await _scan(acts, later, journeys=["once_only_winback_test"])
        assert (result.examined, result.started) == (0, 0)
    assert len(starts.ids) == 1
    due_at = await store.pool.fetchval(
        "SELECT due_at FROM inactivity_due WHERE journey = $1 AND member_id = $2",
        "once_only_winback_test",
        member,
    )
    assert due_at is None  # out of the partial index for good


async def test_a_cooldown_makes_the_member_due_again_only_when_it_ends(temporal_env, store) -> None:
    client, starts = _counting_client(temporal_env.client)
    member = f"cool-{uuid.uuid4().hex[:6]}"
    await _active(store, {member: T0 - 31 * DAY})
    acts = _acts(store, client)
    assert (await _scan(acts, T0, journeys=["winback"])).started == 1
    wid = f"journey/winback/{member}"
    row = await instances.get_instance(store.pool, wid)
    assert row is not None and row.entry_id is not None
    await client.get_workflow_handle(wid).terminate()
    await instances.fold_exited(
        store.pool, workflow_id=wid, entry_id=row.entry_id, reason="done", converted=False, at=T0
    )
    # Win-back allows re-entry 90 days after a run ended.
    assert (await _scan(acts, T0 + 89 * DAY, journeys=["winback"])).examined == 0
    back = await _scan(acts, T0 + 91 * DAY, journeys=["winback"])
    assert (back.examined, back.started) == (1, 1)
    assert starts.ids == [wid, wid]
    await client.get_workflow_handle(wid).terminate()


async def test_activity_and_a_changed_inactive_days_move_the_due_moment(
    temporal_env, store
) -> None:
    client, starts = _counting_client(temporal_env.client)
    member = f"ten-{uuid.uuid4().hex[:6]}"
    await _active(store, {member: T0 - 15 * DAY})
    assert (await _scan(_acts(store, client), T0, journeys=["winback"])).examined == 0
    # The operator shortens the quiet period to 10 days: the scan recomputes, once.
    short = _acts(store, client, journey_settings={"winback": {"inactive_days": 10}})
    await _active(store, {member: T0 - 12 * DAY})  # activity moves the due moment too
    assert (await _scan(short, T0 - 3 * DAY, journeys=["winback"])).examined == 0
    result = await _scan(short, T0, journeys=["winback"])
    assert (result.examined, result.started) == (1, 1)
    assert starts.ids == [f"journey/winback/{member}"]
    await client.get_workflow_handle(f"journey/winback/{member}").terminate()


async def test_the_scan_reads_and_marks_by_index(store) -> None:
    await store.pool.execute(
        "INSERT INTO inactivity_due (journey, member_id, last_activity_at, due_at) "
        "SELECT 'winback', 'm' || i, now(), CASE WHEN i % 100 = 0 THEN now() - interval '1 day' "
        "ELSE CASE WHEN i % 3 = 0 THEN NULL ELSE now() + interval '10 days' END END "
        "FROM generate_series(1, 20000) AS i"
    )
    await store.pool.execute("ANALYZE inactivity_due")
    now = dt.datetime.now(dt.UTC)
    ids = [f"m{i}" for i in range(100, 5100, 100)]
    for sql, args in (
        (inactivity_due.DUE_PAGE_SQL, ("winback", now, now - 400 * DAY, "", 500)),
        (inactivity_due.MARK_SQL, ("winback", ids, [now] * len(ids))),
    ):
        plan = "\n".join(r[0] for r in await store.pool.fetch("EXPLAIN " + sql, *args))
        assert "Seq Scan" not in plan, plan
        assert "inactivity_due_due_idx" in plan or "inactivity_due_pkey" in plan, plan
        if sql == inactivity_due.DUE_PAGE_SQL:  # the index scan starts at the cursor
            conds = [line for line in plan.splitlines() if "Index Cond" in line]
            assert any("ROW(due_at, member_id) >" in line for line in conds), plan


async def test_an_erased_member_has_no_due_rows(store) -> None:
    member = f"g-{uuid.uuid4().hex[:6]}"
    await _active(store, {member: T0 - 40 * DAY})
    count = "SELECT count(*) FROM inactivity_due WHERE member_id = $1"
    assert await store.pool.fetchval(count, member) == 1
    await store.append(f"member-{member}", [NewEvent("member.erased", {}, occurred_at=T0)])
    await ProfileProjector(store, clock=lambda: T0).run_until_caught_up()
    assert await store.pool.fetchval(count, member) == 0


async def test_a_half_replayed_profile_never_makes_a_member_due(store) -> None:
    member = f"r-{uuid.uuid4().hex[:6]}"
    for at in (T0 - 40 * DAY, T0 - DAY):
        await store.append(f"member-{member}", [NewEvent("page.viewed", {}, occurred_at=at)])
    await ProfileProjector(store, clock=lambda: T0).run_until_caught_up()
    due_at = "SELECT due_at FROM inactivity_due WHERE journey = 'winback' AND member_id = $1"
    assert await store.pool.fetchval(due_at, member) == T0 + 29 * DAY
    rebuilding = ProfileProjector(store, clock=lambda: T0, batch_size=1)
    async with store.pool.acquire() as c:  # what `rebuild` does first
        await c.execute("DELETE FROM member_profiles")
        await c.execute("DELETE FROM subscription_checkpoints WHERE name = 'member_profiles'")
    assert await rebuilding.run_once() == 1  # only the 40-day-old view is folded so far
    assert await store.pool.fetchval(due_at, member) == T0 + 29 * DAY
