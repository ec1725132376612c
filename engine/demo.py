"""`make demo`: the embedded stack with a generated shop, ingested and shown."""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from event_store import ANY, NewEvent, PostgresEventStore

from .db import database_url, migrate
from .settings import get_settings
from .synthetic import generate_shop

console = Console()


async def run_demo(members: int, events: int, seed: int) -> None:
    settings = get_settings()
    console.rule("[bold]Journeyman demo")
    started = time.perf_counter()
    url = database_url(settings)
    where = "configured" if settings.database_url else f"embedded, data in {settings.data_dir}"
    console.print(f"PostgreSQL  {where}")
    await migrate(url)
    store = await PostgresEventStore.connect(url)
    shop = list(generate_shop(members, events, seed=seed))
    stored = duplicates = 0
    by_type: Counter[str] = Counter()
    with Progress(
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("ingest", total=len(shop))
        for i in range(0, len(shop), 1000):
            chunk = shop[i : i + 1000]
            grouped: dict[str, list[NewEvent]] = {}
            for e in chunk:
                grouped.setdefault(f"member-{e.member_id}", []).append(
                    NewEvent(e.type, e.properties, {"source": "demo"}, e.event_id, e.occurred_at)
                )
            results = await store.append_batch([(s, evs, ANY) for s, evs in grouped.items()])
            for r in results:
                if r.duplicate:
                    duplicates += 1
                else:
                    stored += 1
            by_type.update(e.type for e in chunk)
            progress.advance(task, len(chunk))
    table = Table(title="Events in the store by type")
    table.add_column("type")
    table.add_column("count", justify="right")
    async with store.pool.acquire() as c:
        rows = await c.fetch("SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY 2 DESC")
        streams = await c.fetchval("SELECT count(DISTINCT stream_id) FROM events")
    for r in rows:
        table.add_row(r["type"], f"{r['n']:,}")
    console.print(table)
    console.print(
        f"this run: {stored:,} stored, {duplicates:,} already there "
        f"(re-running stores nothing twice); {streams:,} member streams; "
        f"{time.perf_counter() - started:.1f}s"
    )
    await store.close()
