"""`python -m bench append [--quick] [--database-url URL]`

Batch-append throughput of the event store (batches of 1,000 events over many member
streams, one writer) beside, in the same run and on the same server:
- the limit: raw `COPY` of the same rows into an identical bare table (same columns, defaults
  and indexes as `events`; no idempotency or version checks);
- a peer: the `eventsourcing` library's PostgreSQL application recorder, same batches.
Then the single-event append latency (p50/p99) and the subscription lag p99 under a steady
5,000 events/s write load, read by a separate connection pool as another process would.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Callable, Sequence
from urllib.parse import parse_qs, urlsplit

import asyncpg
from journeyman.event_store import NewEvent, PostgresEventStore
from journeyman.event_store.model import AppendResult
from journeyman.event_store.postgres import _COPY_COLUMNS
from journeyman.event_store.validation import to_json

from .common import bench_database, percentile, result_line

BATCH = 1000
# Every writer serialises with the store's own JSON encoder (CPython's C encoder called
# directly), so the figures differ only in what each does beyond serialising.
dumps = to_json


def make_batches(total: int, streams: int, seed: str) -> list[list[tuple[str, NewEvent]]]:
    batches = []
    for b in range(total // BATCH):
        batch = []
        for i in range(BATCH):
            n = b * BATCH + i
            payload = {"url": f"/products/{n % 977}", "session": n % 31, "ref": "campaign-x"}
            batch.append(
                (
                    f"member-{seed}{n % streams}",
                    NewEvent("page.viewed", payload, {"source": "bench"}),
                )
            )
        batches.append(batch)
    return batches


def as_items(batch: Sequence[tuple[str, NewEvent]]) -> list[tuple[str, list[NewEvent], object]]:
    from journeyman.event_store import ANY

    grouped: dict[str, list[NewEvent]] = {}
    for stream, event in batch:
        grouped.setdefault(stream, []).append(event)
    return [(s, evs, ANY) for s, evs in grouped.items()]


Gate = Callable[[], None]


def _no_gate() -> None:
    return None


async def bench_store(
    store: PostgresEventStore, batches: list, gate: Gate = _no_gate
) -> tuple[float, float, int]:
    """(start, end, events): the store appending `batches` one after another."""
    items = [as_items(b) for b in batches]
    gate()
    start = time.perf_counter()
    for it in items:
        await store.append_batch(it)
    return start, time.perf_counter(), sum(len(b) for b in batches)


# The store's own COPY columns, less the position the bare table's identity assigns.
COPY_COLUMNS = [c for c in _COPY_COLUMNS if c != "global_position"]


async def create_copy_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute("CREATE TABLE bench_copy (LIKE events INCLUDING ALL)")
        await conn.execute("ANALYZE bench_copy")
    finally:
        await conn.close()


async def drop_copy_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
    finally:
        await conn.close()


async def bench_copy(url: str, batches: list, gate: Gate = _no_gate) -> tuple[float, float, int]:
    """(start, end, events): raw binary `COPY` of the same rows into the bare `bench_copy`."""
    conn = await asyncpg.connect(url)
    try:
        # COPY is binary: jsonb's binary form is a version byte (1) and the JSON text.
        await conn.set_type_codec(
            "jsonb",
            encoder=lambda t: b"\x01" + t.encode(),
            decoder=lambda b: b[1:].decode(),
            schema="pg_catalog",
            format="binary",
        )
        versions: dict[str, int] = {}
        count = 0
        gate()
        start = time.perf_counter()
        # Timed from the same in-memory events the store gets: serialising them is part of
        # any writer's work, so the limit includes it.
        for batch in batches:
            rows = []
            now = time_now()
            for stream, e in batch:
                v = versions.get(stream, -1) + 1
                versions[stream] = v
                rows.append((stream, v, e.event_id, e.type, dumps(e.data), dumps(e.metadata), now))
            async with conn.transaction():
                await conn.copy_records_to_table("bench_copy", records=rows, columns=COPY_COLUMNS)
            count += len(rows)
        return start, time.perf_counter(), count
    finally:
        await conn.close()


def time_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def _es_recorder(url: str, table: str):
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/") or "postgres",
        host=host,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        pool_size=2,
    )
    return datastore, PostgresApplicationRecorder(datastore, events_table_name=table)


def create_es_table(url: str, table: str) -> None:
    datastore, recorder = _es_recorder(url, table)
    recorder.create_table()
    datastore.close()


def bench_eventsourcing(
    url: str, batches: list, table: str, gate: Gate = _no_gate
) -> tuple[float, float, int]:
    """(start, end, events): the `eventsourcing` PostgreSQL application recorder (psycopg),
    its default path. Like the others it is timed from the same in-memory events, so turning
    them into its stored events (serialising) is part of its figure."""
    from eventsourcing.persistence import StoredEvent

    datastore, recorder = _es_recorder(url, table)
    ids: dict[str, uuid.UUID] = {}
    versions: dict[str, int] = {}
    count = 0
    gate()
    start = time.perf_counter()
    for batch in batches:
        stored = []
        for stream, e in batch:
            oid = ids.get(stream)
            if oid is None:
                oid = ids[stream] = uuid.uuid4()
            v = versions.get(stream, 0) + 1
            versions[stream] = v
            state = dumps({"data": e.data, "metadata": e.metadata}).encode()
            stored.append(StoredEvent(oid, v, e.type, state))
        recorder.insert_events(stored)
        count += len(stored)
    end = time.perf_counter()
    datastore.close()
    return start, end, count


def rate(spans: Sequence[tuple[float, float, int]]) -> float:
    """Events per second over the wall time from the first writer's start to the last's end."""
    return sum(n for _, _, n in spans) / (max(e for _, e, _ in spans) - min(s for s, _, _ in spans))


def _writer(kind: str, url: str, seed: str, events: int, table: str, barrier, out) -> None:
    """One writer process: prepare, wait for the others, write, report its span."""
    batches = make_batches(events, 5000, seed)
    gate = barrier.wait
    if kind == "copy":
        span = asyncio.run(bench_copy(url, batches, gate))
    elif kind == "eventsourcing":
        span = bench_eventsourcing(url, batches, table, gate)
    else:

        async def store_run() -> tuple[float, float, int]:
            store = await PostgresEventStore.connect(url, min_size=1, max_size=1)
            try:
                return await bench_store(store, batches, gate)
            finally:
                await store.close()

        span = asyncio.run(store_run())
    out.put(span)


def concurrent(kind: str, url: str, writers: int, events: int, tag: str, table: str = "") -> float:
    """`writers` processes of one kind writing at once, each to its own 5,000 streams."""
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(writers), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(kind, url, f"{tag}w{w}-", events, table, barrier, out))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    spans = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"{kind} writer exited with {p.exitcode}")
    return rate(spans)


async def single_append_latency(store: PostgresEventStore, n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await store.append(f"member-lat{i % 50}", [NewEvent("app.opened", {"i": i})])
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50), percentile(samples, 99)


async def subscription_lag(url: str, seconds: float, rate: int = 5000) -> tuple[float, float, int]:
    """Lag from an append's acknowledgement to a subscriber in another pool receiving it."""
    writer = await PostgresEventStore.connect(url, min_size=2, max_size=4)
    reader = await PostgresEventStore.connect(url, min_size=1, max_size=2)
    acked: dict[str, float] = {}
    received: dict[str, float] = {}
    per_tick, tick = rate // 100, 0.01
    total = int(seconds / tick) * per_tick
    await reader.save_checkpoint("bench-lag", await reader.head())

    async def write() -> None:
        start = time.perf_counter()
        for t in range(int(seconds / tick)):
            events = [NewEvent("page.viewed", {"t": t}) for _ in range(per_tick)]
            pairs = [(f"member-lag{(t * per_tick + k) % 500}", e) for k, e in enumerate(events)]
            results: list[AppendResult] = await writer.append_batch(as_items(pairs))
            now = time.perf_counter()
            for r in results:
                acked[r.event_id] = now
            delay = start + (t + 1) * tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def read() -> None:
        sub = reader.subscribe("bench-lag", batch_size=1000)
        async for event in sub:
            received[event.event_id] = time.perf_counter()
            if len(received) >= total:
                return

    await asyncio.wait_for(asyncio.gather(write(), read()), seconds * 4 + 30)
    lags = [max(0.0, received[k] - acked[k]) * 1000 for k in acked]
    await writer.close()
    await reader.close()
    return percentile(lags, 50), percentile(lags, 99), len(lags)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench append")
    parser.add_argument("--quick", action="store_true", help="smaller run, under a minute")
    parser.add_argument("--events", type=int, default=None, help="events per writer and round")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    per_round = max(BATCH, (args.events or (10_000 if args.quick else 40_000)) // BATCH * BATCH)
    lag_seconds = 4 if args.quick else 15
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, per_round, args.writers, lag_seconds, args.quick))


async def _run(url: str, per_round: int, writers: int, lag_seconds: float, quick: bool) -> None:
    store = await PostgresEventStore.connect(url, min_size=1, max_size=4)
    print(
        f"append bench: batches of {BATCH:,} events, {per_round:,} events per writer and round, "
        f"each writer on its own 5,000 streams; one writer, then {writers} writer processes"
    )
    # Warm up both paths so neither pays first-plan costs inside the measurement.
    await create_copy_table(url)
    await bench_store(store, make_batches(2 * BATCH, 5000, "warm"))
    await bench_copy(url, make_batches(2 * BATCH, 5000, "warm"))
    # The writers take turns in rounds, so a busy moment on the machine hits them alike;
    # each one's best round is its figure.
    rounds = 2 if quick else 4
    one: dict[str, list[float]] = {"copy": [], "store": [], "eventsourcing": []}
    many: dict[str, list[float]] = {"copy": [], "store": [], "eventsourcing": []}
    for r in range(rounds):
        es_one, es_many = f"bench_es_one{r}", f"bench_es_many{r}"
        await asyncio.to_thread(create_es_table, url, es_one)
        await asyncio.to_thread(create_es_table, url, es_many)
        one["copy"].append(rate([await bench_copy(url, make_batches(per_round, 5000, f"c{r}-"))]))
        one["store"].append(
            rate([await bench_store(store, make_batches(per_round, 5000, f"s{r}-"))])
        )
        one["eventsourcing"].append(
            rate(
                [
                    await asyncio.to_thread(
                        bench_eventsourcing, url, make_batches(per_round, 5000, f"e{r}-"), es_one
                    )
                ]
            )
        )
        for kind, table in (("copy", ""), ("store", ""), ("eventsourcing", es_many)):
            many[kind].append(
                await asyncio.to_thread(
                    concurrent, kind, url, writers, per_round, f"{kind[0]}{r}m", table
                )
            )
        print(
            f"  round {r + 1}/{rounds}: one writer: COPY {one['copy'][-1]:,.0f}  "
            f"store {one['store'][-1]:,.0f}  eventsourcing {one['eventsourcing'][-1]:,.0f}   "
            f"{writers} writers: COPY {many['copy'][-1]:,.0f}  store {many['store'][-1]:,.0f}  "
            f"eventsourcing {many['eventsourcing'][-1]:,.0f} events/s"
        )
    await drop_copy_table(url)
    best1 = {k: max(v) for k, v in one.items()}
    best = {k: max(v) for k, v in many.items()}
    print(f"  {'':44}{'one writer':>14}{f'{writers} writers':>14}")
    for label, kind, note in (
        ("raw COPY into an identical bare table", "copy", "(limit)"),
        ("journeyman append_batch", "store", ""),
        ("eventsourcing PostgresApplicationRecorder", "eventsourcing", "(peer)"),
    ):
        print(f"  {label:44}{best1[kind]:>14,.0f}{best[kind]:>14,.0f}  events/s {note}")
    p50, p99 = await single_append_latency(store, 200 if quick else 1000)
    print(f"  single-event append latency  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    await store.close()
    lag50, lag99, n = await subscription_lag(url, lag_seconds)
    print(
        f"  subscription lag at 5,000 events/s ({n:,} events)  p50 {lag50:.1f} ms  "
        f"p99 {lag99:.1f} ms  (target <= 100 ms)"
    )
    print(
        f"  {writers} writers: ratio to COPY {best['store'] / best['copy']:.2f} (target >= 0.7); "
        f"vs eventsourcing {best['store'] / best['eventsourcing']:.2f}x (target >= 2x)"
    )
    print(
        f"  one writer: ratio to COPY {best1['store'] / best1['copy']:.2f}; "
        f"vs eventsourcing {best1['store'] / best1['eventsourcing']:.2f}x"
    )
    print(
        result_line(
            "append",
            best["store"],
            "events/s",
            best["copy"],
            writers=writers,
            peers={"eventsourcing": round(best["eventsourcing"], 2)},
            one_writer={
                "value": round(best1["store"], 2),
                "limit": round(best1["copy"], 2),
                "ratio": round(best1["store"] / best1["copy"], 3),
                "peers": {"eventsourcing": round(best1["eventsourcing"], 2)},
            },
            single_append_ms={"p50": round(p50, 2), "p99": round(p99, 2)},
            subscription_lag_ms={"p50": round(lag50, 1), "p99": round(lag99, 1)},
        )
    )
