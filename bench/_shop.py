"""A shop of N members with ~20 events each, loaded through the store's own `append_batch`.

Each member's stream is what a shop and the engine would have written over about three
months: `member.registered`, page and product views, two `cart.updated`, one `order.placed`,
and one pass through the welcome journey (`journey.entered`, `message.sent`,
`message.delivered`, `journey.exited`) so that analytics sees one entry and one send per
member. Members are opaque ids, as the store mints them.

One member in `DUE_EVERY` went quiet more than 30 days before `now` (the win-back journey's
default): the inactivity scan must find exactly those. Everyone else was active within the
last 29 days.

Members are generated in chunks whose events are interleaved by time, so a batch of 1,000
events touches a few hundred members, as a store written in time order does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import asyncpg
from journeyman.event_store import ANY, NewEvent, PostgresEventStore
from journeyman.event_store.validation import to_json

BATCH = 1000
CHUNK = 250
DUE_EVERY = 100
JOURNEY = "welcome"
TIMEZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC"]
# The store's COPY columns, less the position the identity column assigns.
COPY_COLUMNS = [
    "stream_id",
    "stream_version",
    "event_id",
    "type",
    "data",
    "metadata",
    "occurred_at",
]

Row = tuple[str, int, NewEvent]
"""(stream id, stream version, event): the version is the event's place in its stream."""


def member_id(seed: int, i: int) -> str:
    """An opaque member id (20 hex digits), deterministic for (seed, i)."""
    return hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=10).hexdigest()


def is_due(i: int) -> bool:
    return i % DUE_EVERY == 0


def due_count(members: int) -> int:
    return sum(1 for i in range(0, members, DUE_EVERY))


def member_events(i: int, mid: str, now: dt.datetime, rng: random.Random) -> list[NewEvent]:
    """One member's 20 events, in time order."""
    day = dt.timedelta(days=1)
    if is_due(i):
        last = now - rng.uniform(31, 60) * day
    else:
        last = now - rng.uniform(0.05, 29) * day
    first = last - rng.uniform(1, 30) * day
    span = (last - first).total_seconds()
    tz = TIMEZONES[i % len(TIMEZONES)]
    wf = f"journey/{JOURNEY}/{mid}"
    entry = f"run-{mid}"
    delivery = f"d-{mid}"

    def at(seconds: float) -> dt.datetime:
        return first + dt.timedelta(seconds=seconds)

    journey_meta = {"source": "journey", "correlation_id": wf}
    about = {"journey": JOURNEY, "workflow_id": wf, "entry_id": entry}
    events = [
        NewEvent(
            "member.registered",
            {"timezone": tz, "locale": "en", "consent": {"email:marketing": True}},
            {"source": "bench"},
            event_id=f"{mid}-reg",
            occurred_at=first,
        ),
        NewEvent(
            "journey.entered",
            {**about, "key": None, "variant": "control", "holdout": False, "trigger": f"{mid}-reg"},
            journey_meta,
            event_id=f"journey.entered/{wf}/{entry}",
            occurred_at=at(1),
        ),
        NewEvent(
            "message.sent",
            {
                **about,
                "delivery_id": delivery,
                "channel": "email",
                "via": "email",
                "step": "welcome",
                "template": "welcome",
            },
            journey_meta,
            event_id=f"message.sent/{delivery}",
            occurred_at=at(2),
        ),
        NewEvent(
            "message.delivered",
            {"delivery_id": delivery, "channel": "email", "journey": JOURNEY},
            {"source": "feedback"},
            event_id=f"message.delivered/{delivery}",
            occurred_at=at(60),
        ),
    ]
    times = sorted(rng.uniform(120, span) for _ in range(15))
    times[-1] = span  # the last activity is exactly `last`
    sku = rng.randrange(60)
    for k, t in enumerate(times):
        if k == 9 or k == 11:
            kind, data = (
                "cart.updated",
                {"cart_id": f"c-{mid}", "items": [{"sku": f"sku-{sku:03d}", "qty": 1 + k % 2}]},
            )
        elif k == 12:
            kind, data = "order.placed", {"order_id": f"o-{mid}", "total": 20.0 + sku}
        elif k % 4 == 3:
            kind, data = "product.viewed", {"sku": f"sku-{(sku + k) % 60:03d}"}
        else:
            kind, data = "page.viewed", {"url": f"/products/sku-{(sku + k) % 60:03d}", "s": k}
        events.append(
            NewEvent(kind, data, {"source": "bench"}, event_id=f"{mid}-{k}", occurred_at=at(t))
        )
    events.append(
        NewEvent(
            "journey.exited",
            {**about, "reason": "completed", "status": "completed", "converted": False},
            journey_meta,
            event_id=f"journey.exited/{wf}/{entry}",
            occurred_at=at(min(3 * 86400, span)),
        )
    )
    events.sort(key=lambda e: e.occurred_at or first)
    return events


def batches(members: int, seed: int, now: dt.datetime) -> Iterator[list[Row]]:
    """The shop's events in batches of at most `BATCH`, chunk by chunk."""
    rng = random.Random(seed)
    for start in range(0, members, CHUNK):
        rows: list[tuple[dt.datetime, Row]] = []
        for i in range(start, min(members, start + CHUNK)):
            mid = member_id(seed, i)
            for v, e in enumerate(member_events(i, mid, now, rng)):
                rows.append((e.occurred_at or now, (f"member-{mid}", v, e)))
        rows.sort(key=lambda r: r[0])
        for b in range(0, len(rows), BATCH):
            yield [r for _, r in rows[b : b + BATCH]]


@dataclass
class LoadResult:
    events: int = 0
    wall_s: float = 0.0
    store_events: int = 0
    store_s: float = 0.0
    """Events written by `append_batch`, and the time inside it."""
    windows: dict[str, dict[str, float]] = field(default_factory=dict)
    """first/last 10%: events and seconds of each path, alternating batches."""

    def rate(self, window: str, path: str) -> float:
        w = self.windows.get(window, {})
        s = w.get(f"{path}_s", 0.0)
        return w.get(f"{path}_events", 0.0) / s if s else float("nan")


async def _copy_connection(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    # COPY is binary: jsonb's binary form is a version byte (1) and the JSON text.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda t: b"\x01" + t.encode(),
        decoder=lambda b: b[1:].decode(),
        schema="pg_catalog",
        format="binary",
    )
    return conn


async def raw_copy(conn: asyncpg.Connection, rows: list[Row]) -> None:
    """The limit: the same rows by a bare binary COPY into `events` (no head lookup, no
    checks), serialised with the store's encoder, one transaction."""
    records = [
        (s, v, e.event_id, e.type, to_json(e.data), to_json(e.metadata), e.occurred_at)
        for s, v, e in rows
    ]
    async with conn.transaction():
        await conn.copy_records_to_table("events", records=records, columns=COPY_COLUMNS)


def _items(rows: list[Row]) -> list[tuple[str, list[NewEvent], object]]:
    grouped: dict[str, list[NewEvent]] = {}
    for stream, _, e in rows:
        grouped.setdefault(stream, []).append(e)
    return [(s, evs, ANY) for s, evs in grouped.items()]


async def _ahead(rows: Iterator[list[Row]], depth: int = 8) -> AsyncIterator[list[Row]]:
    """The batches of `rows`, generated in a thread while the loader waits on PostgreSQL,
    so generating the shop overlaps with writing it."""
    ready: queue.Queue[list[Row] | BaseException | None] = queue.Queue(depth)

    def produce() -> None:
        try:
            for batch in rows:
                ready.put(batch)
        except BaseException as exc:  # handed to the loader, which raises it
            ready.put(exc)
            return
        ready.put(None)

    threading.Thread(target=produce, name="shop-generator", daemon=True).start()
    while True:
        item = await asyncio.to_thread(ready.get)
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


async def load(
    store: PostgresEventStore, url: str, members: int, seed: int, now: dt.datetime
) -> LoadResult:
    """Write the shop. Inside the first and the last 10% of the batches, batches alternate
    between the store's `append_batch` and a raw COPY of the same kind of rows into the same
    table, so both are timed at the same table size; elsewhere every batch goes through the
    store. The rows are identical either way (same ids, versions, data and times)."""
    total = -(-members * 20 // BATCH)  # an estimate: windows by batch count
    window = max(2, total // 10)
    result = LoadResult()
    for name in ("first", "last"):
        result.windows[name] = {"store_events": 0, "store_s": 0.0, "copy_events": 0, "copy_s": 0.0}
    conn = await _copy_connection(url)
    t0 = time.perf_counter()
    try:
        n = -1
        async for rows in _ahead(batches(members, seed, now)):
            n += 1
            name = "first" if n < window else "last" if n >= total - window else None
            path = "copy" if name is not None and n % 2 == 1 else "store"
            if path == "store":
                items = _items(rows)
                start = time.perf_counter()
                await store.append_batch(items)
                took = time.perf_counter() - start
                result.store_s += took
                result.store_events += len(rows)
            else:
                start = time.perf_counter()
                await raw_copy(conn, rows)
                took = time.perf_counter() - start
            if name is not None:
                result.windows[name][f"{path}_events"] += len(rows)
                result.windows[name][f"{path}_s"] += took
            result.events += len(rows)
    finally:
        await conn.close()
    result.wall_s = time.perf_counter() - t0
    return result
