"""The inactivity scan at scale: with a share of members due (1% by default), how long the
scan takes to find them, how many rows it reads, and how many workflow starts reach
Temporal — beside, in the same run, a bare indexed read of the same due rows (the limit)
and the full read of every profile that a scan without due moments would need.

    python -m bench scan [--members 10000,100000] [--due-share 0.01] [--temporal]
                         [--database-url URL]

Profiles (and their `inactivity_due` rows) are written by `COPY`, not through the event
store: the scan only reads those two tables. Without `--temporal`, starts go to a stand-in
client that counts them (and answers "started"); with it, to a Temporal dev server with no
worker (the runs are recorded, never executed).

`measure_scan(url, ...)` is importable (`python -m bench scale` uses it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.common import bench_database, result_line

STATS_TABLES = ("member_profiles", "inactivity_due", "journey_instances")


# ------------------------------------------------------------------ population
async def populate(
    url: str,
    members: int,
    *,
    journey: str = "winback",
    days: float = 30,
    cooldown_days: float = 90,
    finished_share: float = 0.3,
) -> None:
    """`members` profiles by `COPY`, none due: `finished_share` of them long quiet (40 to 400
    days) who already went through the journey (its run ended 0 to 80 days ago, so the
    re-entry cooldown blocks them), the rest active in the last 20 days; with their
    `journey_instances` and `inactivity_due` rows. Replaces what the tables held."""
    now = dt.datetime.now(dt.UTC)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE member_profiles, inactivity_due, journey_instances")
        finished = round(members * finished_share)
        profiles, due, runs = [], [], []
        for i in range(members):
            m = uuid.uuid4().hex
            if i < finished:
                last = now - dt.timedelta(days=40 + (i * 7919) % 360)
                ended = now - dt.timedelta(days=(i * 104729) % 80)
                blocked = ended + dt.timedelta(days=cooldown_days)
                due.append((journey, m, last, blocked, blocked))
                runs.append((f"journey/{journey}/{m}", journey, m, False, False, 1, ended, ended))
            else:
                last = now - dt.timedelta(minutes=(i * 7919) % (20 * 24 * 60))
                due.append((journey, m, last, None, last + dt.timedelta(days=days)))
            profiles.append((m, last, last, last))
        await conn.copy_records_to_table(
            "member_profiles",
            records=profiles,
            columns=["member_id", "first_seen_at", "last_seen_at", "last_activity_at"],
        )
        await conn.copy_records_to_table(
            "inactivity_due",
            records=due,
            columns=["journey", "member_id", "last_activity_at", "blocked_until", "due_at"],
        )
        await conn.copy_records_to_table(
            "journey_instances",
            records=runs,
            columns=[
                "workflow_id",
                "journey",
                "member_id",
                "running",
                "pending",
                "entries",
                "entered_at",
                "exited_at",
            ],
        )
        for table in ("member_profiles", "inactivity_due", "journey_instances"):
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


async def make_due(url: str, share: float, *, journey: str = "winback", days: float = 30) -> int:
    """Make `share` of all members (chosen among those the journey does not block) quiet for
    `days` + 10 days, profile and due row alike; returns how many."""
    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM member_profiles")
        n = round(total * share)
        quiet = dt.datetime.now(dt.UTC) - dt.timedelta(days=days + 10)
        async with conn.transaction():
            chosen = [
                r["member_id"]
                for r in await conn.fetch(
                    "SELECT member_id FROM inactivity_due WHERE journey = $1 "
                    "AND due_at IS NOT NULL AND blocked_until IS NULL "
                    "ORDER BY md5(member_id) LIMIT $2",
                    journey,
                    n,
                )
            ]
            await conn.execute(
                "UPDATE member_profiles SET last_activity_at = $2 WHERE member_id = ANY($1)",
                chosen,
                quiet,
            )
            await conn.execute(
                "UPDATE inactivity_due SET last_activity_at = $3::timestamptz, "
                "blocked_until = NULL, due_at = $3::timestamptz + $4::float8 * interval '1 day' "
                "WHERE journey = $1 AND member_id = ANY($2)",
                journey,
                chosen,
                quiet,
                days,
            )
        await conn.execute("ANALYZE inactivity_due")
        return len(chosen)
    finally:
        await conn.close()


# ------------------------------------------------------------------ clients
@dataclass
class _Response:
    started: bool = True


@dataclass
class _Handle:
    result_run_id: str
    _start_workflow_response: _Response = field(default_factory=_Response)


class CountingClient:
    """Stands in for a Temporal client: counts `start_workflow` calls, answers "started"."""

    def __init__(self) -> None:
        self.starts = 0

    async def start_workflow(self, *args: Any, **kwargs: Any) -> _Handle:
        self.starts += 1
        return _Handle(uuid.uuid4().hex)


def counted(client: Any) -> tuple[Any, Any]:
    """The client, and something whose `starts` counts the workflow starts it makes."""
    if isinstance(client, CountingClient):
        return client, client
    from temporalio.client import Client, Interceptor, OutboundInterceptor

    class Counter(Interceptor):
        starts = 0

        def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
            counter = self

            class Outbound(OutboundInterceptor):
                async def start_workflow(self, input: Any) -> Any:
                    counter.starts += 1
                    return await super().start_workflow(input)

            return Outbound(next)

    c = Counter()
    return Client(**{**client.config(), "interceptors": [c]}), c


# ------------------------------------------------------------------ measurement
async def _table_reads(url: str) -> dict[str, int]:
    """Tuples read so far per table (sequential + by index), as the statistics show them."""
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(1.5)  # backends that just closed have flushed their counters
        rows = await conn.fetch(
            "SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n "
            "FROM pg_stat_user_tables WHERE relname = ANY($1)",
            list(STATS_TABLES),
        )
        return {r["relname"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def _bare_read(url: str, journey: str, now: dt.datetime) -> float:
    """The limit: one indexed read of the due rows, nothing else."""
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await conn.fetch(
            "SELECT member_id FROM inactivity_due WHERE journey = $1 AND due_at IS NOT NULL "
            "AND due_at <= $2 ORDER BY due_at, member_id",
            journey,
            now,
        )
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def _full_read(
    url: str, journey: str, now: dt.datetime, days: float
) -> tuple[float, int, int]:
    """What finding them costs without due moments: every quiet profile checked against its
    journey instance (the query such a scan runs, all pages at once, re-entry rule left
    out); with the profiles it reads and the member count."""
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        await conn.fetch(
            "SELECT p.member_id FROM member_profiles p LEFT JOIN journey_instances j "
            "ON j.journey = $2 AND j.workflow_id = $3 || p.member_id "
            "WHERE p.last_activity_at < $1 AND NOT p.erased AND p.merged_into IS NULL "
            "AND (j.workflow_id IS NULL OR NOT j.running) ORDER BY p.last_activity_at, p.member_id",
            now - dt.timedelta(days=days),
            journey,
            f"journey/{journey}/",
        )
        elapsed = time.perf_counter() - t0
        quiet = await conn.fetchval(
            "SELECT count(*) FROM member_profiles WHERE last_activity_at < $1",
            now - dt.timedelta(days=days),
        )
        profiles = await conn.fetchval("SELECT count(*) FROM member_profiles")
        return elapsed, quiet, profiles
    finally:
        await conn.close()


async def _bare_starts(client: Any, n: int, concurrency: int) -> float:
    """The limit for starting: `n` starts of a workflow type nobody runs, with the same
    concurrency and nothing else (no database); seconds."""
    sem = asyncio.Semaphore(concurrency)
    tq = f"bench-bare-{uuid.uuid4().hex[:6]}"

    async def one(i: int) -> None:
        async with sem:
            await client.start_workflow("bench_nothing", id=f"{tq}-{i}", task_queue=tq)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - t0


async def measure_scan(
    url: str,
    *,
    due_share: float = 0.01,
    client: Any = None,
    journey: str = "winback",
    page_size: int = 500,
    concurrency: int = 50,
) -> dict[str, Any]:
    """Given a migrated store populated with profiles (and their `inactivity_due` rows, see
    `populate`; the scan adds them itself for a journey it has not seen), make `due_share`
    of the members due, run the scan once and report: seconds to find them, rows read per
    table, workflow starts, and the bare indexed read of the same rows (the limit).

    `client`: a Temporal client (starts go to its server; no worker is needed), or None for
    a stand-in that counts them."""
    from journeyman.engine.activities.journey_activities import JourneyActivities
    from journeyman.engine.contracts import ScanRequest
    from journeyman.engine.runtime.worker import registered_journeys
    from journeyman.event_store import PostgresEventStore
    from temporalio.testing import ActivityEnvironment

    cls = registered_journeys()[journey]
    days = float(cls.__journey__.resolve_settings(None).inactive_days)
    due = await make_due(url, due_share, journey=journey, days=days)
    now = dt.datetime.now(dt.UTC)
    client, counter = counted(client if client is not None else CountingClient())
    bare = await _bare_read(url, journey, now)
    full, quiet, profiles = await _full_read(url, journey, now, days)
    before = await _table_reads(url)
    store = await PostgresEventStore.connect(url, min_size=2, max_size=concurrency + 4)
    try:
        acts = JourneyActivities(
            store,
            client=client,
            journeys={journey: cls},
            task_queue=f"bench-scan-{uuid.uuid4().hex[:6]}",
        )
        request = ScanRequest(
            journeys=[journey], page_size=page_size, now=now, start_concurrency=concurrency
        )
        t0 = time.perf_counter()
        result = await ActivityEnvironment().run(acts.scan_inactive, request)
        total = time.perf_counter() - t0
    finally:
        await store.close()
    after = await _table_reads(url)
    starts = counter.starts
    bare_starts = None
    if not isinstance(client, CountingClient):
        bare_starts = round(await _bare_starts(client, due, concurrency), 3)
    return {
        "bare_starts_seconds": bare_starts,
        "members": profiles,
        "due": due,
        "seconds_finding": round(result.seconds_finding, 4),
        "seconds_total": round(total, 3),
        "examined": result.examined,
        "pages": result.pages,
        "rows_read": {t: after.get(t, 0) - before.get(t, 0) for t in STATS_TABLES},
        "workflow_starts": starts,
        "runs_started": result.started,
        "bare_index_read_seconds": round(bare, 4),
        "full_profile_read_seconds": round(full, 4),
        "full_profile_read_rows": quiet,
    }


async def _run(url: str, sizes: list[int], share: float, temporal: bool) -> list[dict[str, Any]]:
    env = None
    client = None
    if temporal:
        from journeyman.engine.runtime.stack import temporal_cli
        from temporalio.contrib.pydantic import pydantic_data_converter
        from temporalio.testing import WorkflowEnvironment

        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            data_converter=pydantic_data_converter,
            dev_server_extra_args=["--log-level", "error"],
        )
        client = env.client
    out = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            await populate(url, n)
            built = time.perf_counter() - t0
            m = await measure_scan(url, due_share=share, client=client)
            m["populate_seconds"] = round(built, 1)
            out.append(m)
            print(
                f"{n:>9,} members, {m['due']:,} due: found in {m['seconds_finding']:.3f} s "
                f"(bare indexed read of the same rows {m['bare_index_read_seconds']:.3f} s; "
                f"reading every quiet profile instead: {m['full_profile_read_rows']:,} rows in "
                f"{m['full_profile_read_seconds']:.3f} s), "
                f"{m['examined']:,} due rows read, rows read per table {m['rows_read']}, "
                f"{m['workflow_starts']:,} workflow starts, whole scan {m['seconds_total']:.2f} s"
                + (
                    f" (the same number of bare starts, same concurrency: "
                    f"{m['bare_starts_seconds']:.2f} s)"
                    if m["bare_starts_seconds"] is not None
                    else ""
                )
            )
    finally:
        if env is not None:
            await env.shutdown()
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench scan")
    parser.add_argument("--members", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--due-share", type=float, default=0.01)
    parser.add_argument("--temporal", action="store_true", help="start on a dev server")
    parser.add_argument("--quick", action="store_true", help="10,000 members only")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.members.split(",")]
    with bench_database(args.database_url) as url:
        results = asyncio.run(_run(url, sizes, args.due_share, args.temporal))
    last = results[-1]
    print(
        result_line(
            "scan",
            last["seconds_finding"],
            "s to find the due members",
            last["bare_index_read_seconds"],
            members=last["members"],
            due=last["due"],
            workflow_starts=last["workflow_starts"],
            rows_read=last["rows_read"],
            full_profile_read_seconds=last["full_profile_read_seconds"],
            full_profile_read_rows=last["full_profile_read_rows"],
        )
    )
