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
import json
import time
import uuid
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

import asyncpg

from event_store import NewEvent, PostgresEventStore
from event_store.model import AppendResult

from .common import bench_database, percentile, result_line

BATCH = 1000
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
    from event_store import ANY

    grouped: dict[str, list[NewEvent]] = {}
    for stream, event in batch:
        grouped.setdefault(stream, []).append(event)
    return [(s, evs, ANY) for s, evs in grouped.items()]


async def bench_store(store: PostgresEventStore, batches: list) -> float:
    items = [as_items(b) for b in batches]
    start = time.perf_counter()
    for it in items:
        await store.append_batch(it)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


async def bench_copy(url: str, batches: list) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute("CREATE TABLE bench_copy (LIKE events INCLUDING ALL)")
        await conn.execute("ANALYZE bench_copy")
        cols = [
            "stream_id",
            "stream_version",
            "event_id",
            "type",
            "data",
            "metadata",
            "occurred_at",
        ]
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
                await conn.copy_records_to_table("bench_copy", records=rows, columns=cols)
            count += len(rows)
        return count / (time.perf_counter() - start)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.close()


def time_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def bench_eventsourcing(url: str, batches: list, table_suffix: str = "") -> float:
    """The `eventsourcing` PostgreSQL application recorder (psycopg), its default path."""
    from eventsourcing.persistence import StoredEvent
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
    recorder = PostgresApplicationRecorder(
        datastore, events_table_name=f"bench_es_events{table_suffix}"
    )
    recorder.create_table()
    ids: dict[str, uuid.UUID] = {}
    versions: dict[str, int] = {}
    prepared = []
    for batch in batches:
        stored = []
        for stream, e in batch:
            oid = ids.setdefault(stream, uuid.uuid4())
            v = versions.get(stream, 0) + 1
            versions[stream] = v
            state = json.dumps({"data": e.data, "metadata": e.metadata}).encode()
            stored.append(StoredEvent(oid, v, e.type, state))
        prepared.append(stored)
    start = time.perf_counter()
    for stored in prepared:
        recorder.insert_events(stored)
    rate = sum(len(s) for s in prepared) / (time.perf_counter() - start)
    datastore.close()
    return rate


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
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    total = args.events or (30_000 if args.quick else 200_000)
    lag_seconds = 4 if args.quick else 15
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, total, lag_seconds, args.quick))


async def _run(url: str, total: int, lag_seconds: float, quick: bool) -> None:
    store = await PostgresEventStore.connect(url, min_size=1, max_size=4)
    print(
        f"append bench: {total:,} events per writer in batches of {BATCH:,} "
        "over 5,000 streams, one writer at a time"
    )
    # Warm up both paths so neither pays first-plan costs inside the measurement.
    await bench_store(store, make_batches(2 * BATCH, 5000, "warm"))
    await bench_copy(url, make_batches(2 * BATCH, 5000, "warm"))
    # The three writers take turns in rounds, so a busy moment on the machine hits them
    # alike; each one's best round is its figure.
    rounds = 3 if quick else 5
    per_round = max(BATCH, total // rounds // BATCH * BATCH)
    copy_rates, store_rates, es_rates = [], [], []
    for r in range(rounds):
        copy_rates.append(await bench_copy(url, make_batches(per_round, 5000, f"c{r}-")))
        store_rates.append(await bench_store(store, make_batches(per_round, 5000, f"s{r}-")))
        es_rates.append(
            await asyncio.to_thread(
                bench_eventsourcing, url, make_batches(per_round, 5000, f"e{r}-"), f"r{r}"
            )
        )
        print(
            f"  round {r + 1}/{rounds}: COPY {copy_rates[-1]:,.0f}  store {store_rates[-1]:,.0f}  "
            f"eventsourcing {es_rates[-1]:,.0f} events/s"
        )
    copy_rate, store_rate, es_rate = max(copy_rates), max(store_rates), max(es_rates)
    print(f"  raw COPY into an identical bare table     {copy_rate:>10,.0f} events/s  (limit)")
    print(f"  journeyman append_batch                   {store_rate:>10,.0f} events/s")
    print(f"  eventsourcing PostgresApplicationRecorder {es_rate:>10,.0f} events/s  (peer)")
    p50, p99 = await single_append_latency(store, 200 if quick else 1000)
    print(f"  single-event append latency  p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    await store.close()
    lag50, lag99, n = await subscription_lag(url, lag_seconds)
    print(
        f"  subscription lag at 5,000 events/s ({n:,} events)  p50 {lag50:.1f} ms  "
        f"p99 {lag99:.1f} ms  (target <= 100 ms)"
    )
    print(
        f"  ratio to COPY {store_rate / copy_rate:.2f} (target >= 0.7); "
        f"vs eventsourcing {store_rate / es_rate:.2f}x (target >= 2x)"
    )
    print(
        result_line(
            "append",
            store_rate,
            "events/s",
            copy_rate,
            peers={"eventsourcing": round(es_rate, 2)},
            single_append_ms={"p50": round(p50, 2), "p99": round(p99, 2)},
            subscription_lag_ms={"p50": round(lag50, 1), "p99": round(lag99, 1)},
        )
    )
