"""`python -m bench rekey [--quick] [--members N] [--events N] [--concurrency N]`
(`--database-url URL` to use a running server).

Throughput of `journeyman members rekey` (members re-keyed per second): members from
before opaque ids, each with an email as its store id and events ingested through the
engine (sealed properties, a merged second id), re-keyed one transaction per member.

The limit, measured in the same run on the same server: the same rows copied into a bare
table (no trigger, same indexes as `events`), and one transaction per member that moves
its rows to a new stream id with a single `UPDATE` — the least any per-member rewrite does —
with as many members side by side as the re-key (`--concurrency`, default 4, as the command).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from pydantic import SecretStr

from .common import bench_database, result_line


async def _run(url: str, members: int, events: int, concurrency: int) -> dict[str, float]:
    from journeyman.engine.core.settings import Settings
    from journeyman.engine.identity.crypto import Keyring
    from journeyman.engine.identity.rekey import rekey_all
    from journeyman.engine.ingest.ingestor import Ingestor
    from journeyman.event_store import PostgresEventStore

    settings = Settings(secret_key=SecretStr("bench-rekey-secret-" + "b" * 32))
    store = await PostgresEventStore.connect(url, min_size=1, max_size=concurrency + 1)
    try:
        ids = [f"member{n}@example.com" for n in range(members)]
        await store.pool.execute("INSERT INTO members (member_id) SELECT unnest($1::text[])", ids)
        ingestor = Ingestor(store, settings)
        batch = []
        for n, member in enumerate(ids):
            for k in range(events):
                batch.append(
                    {
                        "event_id": uuid.uuid4().hex,
                        "type": "order.placed" if k % 5 == 0 else "page.viewed",
                        "member": {"id": member, "email": member},
                        "occurred_at": "2026-01-01T12:00:00+00:00",
                        "properties": {"total": 10.5 + k, "note": f"n{n}-{k}"},
                    }
                )
            if len(batch) >= 1000:
                await ingestor.ingest_raw(batch)
                batch = []
        if batch:
            await ingestor.ingest_raw(batch)

        await store.pool.execute("CREATE TABLE bench_rekey (LIKE events INCLUDING ALL)")
        cols = (
            "global_position, tx_id, stream_id, stream_version, event_id, type, data, "
            "metadata, occurred_at, recorded_at"
        )
        await store.pool.execute(f"INSERT INTO bench_rekey ({cols}) SELECT {cols} FROM events")
        await store.pool.execute("ANALYZE events, bench_rekey")
        todo = iter(ids)

        async def bare_worker() -> None:
            for member in todo:
                async with store.pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "UPDATE bench_rekey SET stream_id = $2 WHERE stream_id = $1",
                        f"member-{member}",
                        f"member-{uuid.uuid4().hex}",
                    )

        started = time.perf_counter()
        await asyncio.gather(*(bare_worker() for _ in range(concurrency)))
        bare = time.perf_counter() - started

        started = time.perf_counter()
        counts = await rekey_all(
            store, Keyring(settings.resolved_secret()), concurrency=concurrency
        )
        took = time.perf_counter() - started
        assert counts.rekeyed == members, counts
        return {"rekey": members / took, "bare": members / bare}
    finally:
        await store.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench rekey")
    parser.add_argument("--quick", action="store_true", help="100 members of 10 events")
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    members, events = (100, 10) if args.quick else (args.members, args.events)
    with bench_database(args.database_url) as url:
        rates = asyncio.run(_run(url, members, events, args.concurrency))
    print(
        f"rekey: {rates['rekey']:,.0f} members/s ({events} events each); "
        f"bare per-member UPDATE: {rates['bare']:,.0f} members/s"
    )
    print(
        result_line(
            "rekey",
            rates["rekey"],
            "members/s",
            rates["bare"],
            members=members,
            events=events,
            concurrency=args.concurrency,
        )
    )
