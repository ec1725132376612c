"""`python -m bench projection [--members N] [--quick] [--database-url URL]`

Member profile projection throughput, beside its limit measured in the same run:
- events: N members x 20 events appended through the store's `append_batch` (1,000 events
  per batch), shaped as ingestion stores them: an identify with traits, page and product
  views, cart updates, orders, a consent change; every property outside the default clear
  list sealed under the member's data key. Members arrive in interleaved sessions of 5
  events, so one batch of the projection spans about 200 members.
- live: the projection run over them for the first time (segments evaluated);
- rebuild: `ProfileProjector.rebuild()` (profiles forgotten, the whole store replayed);
- the limit, a bare fold: the same rows read from the store in one process, the sealed
  properties the fold reads opened, folded into profiles in memory, nothing written.

`measure_projection(url, members=N)` returns the figures as a dict (other benches reuse it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from journeyman.engine.core.settings import Settings
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.identity.sealing import has_sealed, open_fields, seal_event
from journeyman.engine.profiles import ProfileProjector
from journeyman.engine.profiles.fold import READS_DATA, ProfileRow, apply, scores
from journeyman.event_store import ANY, START, NewEvent, PostgresEventStore, RecordedEvent
from pydantic import SecretStr

from .common import bench_database, result_line

EVENTS_PER_MEMBER = 20
SESSION = 5
APPEND_BATCH = 1000
READ_BATCH = 10_000


def bench_settings() -> Settings:
    return Settings(
        secret_key=SecretStr("journeyman-projection-bench-secret"),
        data_dir=Path(tempfile.gettempdir()) / "journeyman-bench-projection",
    )


def _member_events(rng: random.Random, index: int, now: dt.datetime) -> list[NewEvent]:
    """One member's 20 events, oldest first, over the last 200 days."""
    start = now - dt.timedelta(days=rng.uniform(30, 200))
    step = (now - start) / (EVENTS_PER_MEMBER + 1)
    orders = 6 if index % 5 == 0 else index % 3
    kinds: list[tuple[str, dict[str, Any]]] = [
        (
            "member.identified",
            {
                "traits": {"plan": rng.choice(["free", "pro", "team"]), "score": index % 97},
                "timezone": rng.choice(["Europe/Paris", "America/New_York", "Asia/Tokyo"]),
                "locale": rng.choice(["en-GB", "fr-FR", "ja-JP"]),
                "consent": {"email:marketing": True},
            },
        ),
        ("member.consent_changed", {"channel": "sms", "purpose": "marketing", "granted": True}),
    ]
    for k in range(orders):
        kinds.append(("order.placed", {"order_id": f"o-{index}-{k}", "total": 60.0 + k * 25.5}))
    for k in range(2):
        kinds.append(("cart.updated", {"cart_id": f"c-{index}", "items": [{"sku": f"s{k}"}]}))
    while len(kinds) < EVENTS_PER_MEMBER:
        n = len(kinds)
        if n % 3 == 0:
            kinds.append(("product.viewed", {"product_id": f"p{n}", "price": 19.9}))
        else:
            kinds.append(("page.viewed", {"url": f"/products/{n}", "referrer": "campaign-x"}))
    head, rest = kinds[:1], kinds[1:]
    rng.shuffle(rest)
    return [
        NewEvent(t, data, {"source": "bench"}, occurred_at=start + step * (i + 1))
        for i, (t, data) in enumerate(head + rest)
    ]


async def build_events(store: PostgresEventStore, members: int, settings: Settings) -> int:
    """Append `members` x 20 events (sealed as ingestion seals them) in interleaved sessions;
    returns how many were appended."""
    rng = random.Random(20_260_101)
    keyring = Keyring(settings.resolved_secret())
    clear = frozenset(settings.ingest_clear_properties)
    now = dt.datetime.now(dt.UTC)
    run = uuid.uuid4().hex[:8]  # a store that already holds an earlier run keeps it
    ids = [f"{run}{rng.getrandbits(64):016x}" for _ in range(members)]
    keys = {m: keyring.new_data_key(m) for m in ids}
    async with store.pool.acquire() as c:
        await c.executemany("INSERT INTO members (member_id) VALUES ($1)", [(m,) for m in ids])
        await c.executemany(
            "INSERT INTO member_keys (member_id, wrapped_key) VALUES ($1, $2)",
            [(m, wrapped) for m, (_, wrapped) in keys.items()],
        )
    per_member = []
    for i, m in enumerate(ids):
        sealed = []
        for e in _member_events(rng, i, now):
            data = seal_event(e.data, keys[m][0], e.event_id, clear)
            sealed.append(NewEvent(e.type, data, e.metadata, e.event_id, e.occurred_at))
        per_member.append(sealed)
    order: list[tuple[str, NewEvent]] = []
    for s in range(0, EVENTS_PER_MEMBER, SESSION):
        for m, events in zip(ids, per_member, strict=True):
            order.extend((f"member-{m}", e) for e in events[s : s + SESSION])
    for b in range(0, len(order), APPEND_BATCH):
        grouped: dict[str, list[NewEvent]] = {}
        for stream, e in order[b : b + APPEND_BATCH]:
            grouped.setdefault(stream, []).append(e)
        await store.append_batch([(s, evs, ANY) for s, evs in grouped.items()])
    async with store.pool.acquire() as c:
        await c.execute("ANALYZE")
    return len(order)


async def bare_fold(
    store: PostgresEventStore, settings: Settings, limit: int | None = None
) -> tuple[int, int]:
    """The limit: every member event (or the first `limit` of them, a sample for the rate)
    read and folded in memory, in one process, no writes. Returns (events, profiles)."""
    activity = frozenset(settings.activity_types)
    keyring = Keyring(settings.resolved_secret())
    rows: dict[str, ProfileRow] = {}
    cursor, total = START, 0
    while limit is None or total < limit:
        events, cursor = await store.read_all(cursor, category="member", limit=READ_BATCH)
        if not events:
            break
        total += len(events)
        events = await _open(store, keyring, events)
        for e in events:
            member_id = e.stream_id.removeprefix("member-")
            row = rows.get(member_id)
            if row is None:
                row = rows[member_id] = ProfileRow(member_id)
            apply(row, e, activity)
    now = dt.datetime.now(dt.UTC)
    for r in rows.values():
        scores(r, now, settings)
    return total, len(rows)


async def _open(
    store: PostgresEventStore, keyring: Keyring, events: list[RecordedEvent]
) -> list[RecordedEvent]:
    wanted = [e for e in events if e.type in READS_DATA and has_sealed(e.data)]
    if not wanted:
        return events
    keys = await load_data_keys(
        store.pool, keyring, {e.stream_id.removeprefix("member-") for e in wanted}
    )
    opened = {
        e.global_position: replace(
            e, data=open_fields(e.data, keys.get(e.stream_id.removeprefix("member-")), e.event_id)
        )
        for e in wanted
    }
    return [opened.get(e.global_position, e) for e in events]


def _cpu_seconds(stat: str) -> tuple[int, float]:
    """(parent pid, user+system seconds of the process and its reaped children) from the
    text of /proc/<pid>/stat."""
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = sum(int(f) for f in fields[11:15])
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def _postmaster(data_dir: str) -> int:
    pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
    Path(f"/proc/{pid}/stat").read_text()  # it runs here
    return pid


class ServerCpu:
    """CPU seconds used by a local PostgreSQL server (postmaster and backends), read from
    /proc: with the bench's own CPU time it gives the CPU per event, which stays meaningful
    on a machine other work is loading. `None` when the server is not on this machine."""

    def __init__(self, postmaster: int | None) -> None:
        self.postmaster = postmaster

    @classmethod
    async def find(cls, store: PostgresEventStore) -> ServerCpu:
        try:
            async with store.pool.acquire() as c:
                return cls(_postmaster(await c.fetchval("SHOW data_directory")))
        except Exception:  # a remote server, or one this user cannot see
            return cls(None)

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent, cpu = _cpu_seconds(stat)
            if parent == self.postmaster or int(entry.name) == self.postmaster:
                total += cpu
        return total


async def measure_projection(
    url: str,
    store: PostgresEventStore | None = None,
    settings: Settings | None = None,
    events: int | None = None,
    *,
    members: int = 10_000,
    build: bool | None = None,
    live: bool | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    fold_limit: int | None = None,
) -> dict[str, Any]:
    """Build `members` x 20 events, run the projection live once, rebuild it, and run the
    bare fold; returns events/s of each and the rebuild's ratio to the bare fold.

    Given a `store` (and its `settings`) that already holds the events, as `bench scale`
    does, it neither builds nor runs live by default, evaluates every registered plugin's
    segments (as in production), and also returns that bench's keys: `rebuild_s`,
    `events_per_s`, `bare_events_per_s`, `us_per_event`. `events` is not needed (the
    rebuild counts what it replays). `fold_limit` folds only that many events for the bare
    fold's rate (the rebuild still replays everything)."""
    given = store is not None
    build = not given if build is None else build
    live = not given if live is None else live
    settings = settings or bench_settings()
    store = store or await PostgresEventStore.connect(url, min_size=2, max_size=4)
    try:
        from journeyman.workflows.builtin_plugin import LAPSED_VIP, VIP

        built = 0
        if build:
            t0 = time.perf_counter()
            built = await build_events(store, members, settings)
            if progress:
                print(f"  built {built:,} events in {time.perf_counter() - t0:.1f} s")
        kwargs: dict[str, Any] = {"segments": None if given else (VIP, LAPSED_VIP)}
        if batch_size:
            kwargs["batch_size"] = batch_size
        projector = ProfileProjector(store, settings, **kwargs)
        server = await ServerCpu.find(store)
        t0, c0, s0 = time.perf_counter(), time.process_time(), server.seconds()
        live_n = await projector.run_until_caught_up() if live else 0
        live_s, live_cpu = time.perf_counter() - t0, time.process_time() - c0
        live_db = _delta(server.seconds(), s0)
        if progress and live:
            print(f"  live projection: {live_n:,} events in {live_s:.1f} s")
        projector = ProfileProjector(store, settings, **kwargs)
        t0, c0, s0 = time.perf_counter(), time.process_time(), server.seconds()
        rebuild_n = await projector.rebuild()
        rebuild_s, rebuild_cpu = time.perf_counter() - t0, time.process_time() - c0
        rebuild_db = _delta(server.seconds(), s0)
        if progress:
            print(f"  rebuild: {rebuild_n:,} events in {rebuild_s:.1f} s")
        t0, c0, s0 = time.perf_counter(), time.process_time(), server.seconds()
        fold_n, profiles = await bare_fold(store, settings, fold_limit)
        fold_s, fold_cpu = time.perf_counter() - t0, time.process_time() - c0
        fold_db = _delta(server.seconds(), s0)
        if progress:
            print(f"  bare fold: {fold_n:,} events, {profiles:,} profiles in {fold_s:.1f} s")
        async with store.pool.acquire() as c:
            segment_rows = await c.fetchval("SELECT count(*) FROM segment_memberships")
    finally:
        if not given:
            await store.close()
    rebuild_rate, fold_rate = rebuild_n / rebuild_s, fold_n / fold_s
    return {
        "members": members if build else None,
        "events": rebuild_n,
        "built": built,
        "live_events_per_s": round(live_n / live_s, 1) if live_n else None,
        "rebuild_events_per_s": round(rebuild_rate, 1),
        "bare_fold_events_per_s": round(fold_rate, 1),
        "ratio": round(rebuild_rate / fold_rate, 3),
        # CPU time per event, of this process and of the database server: steadier than
        # the wall-clock rates on a machine other work is loading.
        "cpu_us_per_event": {
            "live": _per_event(live_cpu, live_db, live_n) if live_n else None,
            "rebuild": _per_event(rebuild_cpu, rebuild_db, rebuild_n),
            "bare_fold": _per_event(fold_cpu, fold_db, fold_n),
        },
        "profiles": profiles,
        "segment_memberships": segment_rows,
        # The keys `bench scale` reads.
        "rebuild_s": rebuild_s,
        "events_per_s": rebuild_rate,
        "bare_events_per_s": fold_rate,
        "us_per_event": rebuild_s / max(1, rebuild_n) * 1e6,
    }


def _delta(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


def _per_event(python: float, database: float | None, events: int) -> dict[str, float | None]:
    return {
        "python": round(python / events * 1e6, 1),
        "database": None if database is None else round(database / events * 1e6, 1),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench projection")
    parser.add_argument("--members", type=int, default=10_000, help="members (20 events each)")
    parser.add_argument("--quick", action="store_true", help="2,000 members")
    parser.add_argument("--no-live", action="store_true", help="skip the first, live run")
    parser.add_argument("--batch-size", type=int, default=None, help="projector batch size")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    members = 2_000 if args.quick else args.members
    print(
        f"projection bench: {members:,} members x {EVENTS_PER_MEMBER} events, sealed as "
        f"ingestion seals them, in interleaved sessions of {SESSION}"
    )
    with bench_database(args.database_url) as url:
        r = asyncio.run(
            measure_projection(
                url,
                members=members,
                live=not args.no_live,
                batch_size=args.batch_size,
                progress=True,
            )
        )
    if r["live_events_per_s"] is not None:
        print(f"  live projection {r['live_events_per_s']:>10,.0f} events/s (segments evaluated)")
    print(
        f"  rebuild         {r['rebuild_events_per_s']:>10,.0f} events/s\n"
        f"  bare fold       {r['bare_fold_events_per_s']:>10,.0f} events/s (limit: read and "
        "fold in memory, one process, no writes)\n"
        f"  rebuild / bare fold: {r['ratio']:.2f}\n"
        "  CPU per event (µs), this process / database server: "
        + ", ".join(
            f"{k} {v['python']} / {v['database']}"
            for k, v in r["cpu_us_per_event"].items()
            if v is not None
        )
    )
    print(
        result_line(
            "projection",
            r["rebuild_events_per_s"],
            "events/s",
            r["bare_fold_events_per_s"],
            members=members,
            events=r["events"],
            live_events_per_s=r["live_events_per_s"],
            cpu_us_per_event=r["cpu_us_per_event"],
        )
    )
