"""Property: however events carrying aliases are split into batches, ordered or sent
concurrently, the members they resolve to group the aliases exactly as a union-find over
the events does; and a rebuild of the profile projection equals the live projection."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.profiles import ProfileProjector
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TOKENS = [
    ("email", 0),
    ("email", 1),
    ("phone", 0),
    ("device_id", 0),
    ("device_id", 1),
    ("id", 0),
    ("id", 1),
    ("shop", 0),
]


def one_per_kind(tokens: set[int]) -> set[int]:
    """An event carries at most one alias of each kind (one email, one phone, ...)."""
    kept: dict[str, int] = {}
    for t in sorted(tokens):
        kept.setdefault(TOKENS[t][0], t)
    return set(kept.values())


scenario = st.tuples(
    st.lists(
        st.tuples(
            st.sets(st.sampled_from(range(len(TOKENS))), min_size=1, max_size=3).map(one_per_kind),
            st.sampled_from(["page.viewed", "order.placed", "member.consent_changed"]),
        ),
        min_size=1,
        max_size=14,
    ),
    st.lists(st.integers(1, 5), min_size=1, max_size=14),
    st.booleans(),
)


def member_of(prefix: str, tokens: set[int]) -> dict:
    m: dict = {}
    for t in tokens:
        kind, n = TOKENS[t]
        if kind == "email":
            m["email"] = f"{prefix}.{n}@example.com"
        elif kind == "phone":
            m["phone"] = f"+1415555{int(prefix[:4], 16) % 1000:03d}{n}"
        elif kind == "device_id":
            m["device_id"] = f"{prefix}-d{n}"
        elif kind == "id":
            m["id"] = f"{prefix}-m{n}"
        else:
            m["external_ids"] = {"shop": f"{prefix}-s{n}"}
    return m


def reference_groups(events: list[set[int]]) -> set[frozenset[int]]:
    parent = {t: t for e in events for t in e}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for e in events:
        first, *rest = sorted(e)
        for t in rest:
            parent[find(t)] = find(first)
    groups: dict[int, set[int]] = {}
    for t in parent:
        groups.setdefault(find(t), set()).add(t)
    return {frozenset(g) for g in groups.values()}


async def resolved(store: PostgresEventStore, keyring: Keyring, prefix: str, t: int) -> str:
    kind, _ = TOKENS[t]
    member = member_of(prefix, {t})
    async with store.pool.acquire() as c:
        # The client's member id is an alias too (`user_id`).
        alias_kind = {"shop": "external:shop", "id": "user_id"}.get(kind, kind)
        value = member["external_ids"]["shop"] if kind == "shop" else member[kind]
        if kind == "phone":
            value = value.replace(" ", "")
        mid = await c.fetchval(
            "SELECT member_id FROM member_aliases WHERE kind = $1 AND blind = $2",
            alias_kind,
            keyring.blind(alias_kind, value),
        )
        while True:
            nxt = await c.fetchval("SELECT merged_into FROM members WHERE member_id = $1", mid)
            if nxt is None:
                return mid
            mid = nxt


async def check(
    store: PostgresEventStore, ingestor: Ingestor, projector: ProfileProjector, case: tuple
) -> None:
    events, sizes, concurrent = case
    prefix = uuid.uuid4().hex[:8]
    raw = [
        {
            "event_id": f"{prefix}-{i}",
            "type": type_,
            "member": member_of(prefix, tokens),
            "occurred_at": (T0 + dt.timedelta(minutes=i)).isoformat(),
            "properties": {"total": i, "channel": "email", "granted": i % 2 == 0},
        }
        for i, (tokens, type_) in enumerate(events)
    ]
    batches, i = [], 0
    for size in sizes:
        if i < len(raw):
            batches.append(raw[i : i + size])
            i += size
    if i < len(raw):
        batches.append(raw[i:])
    if concurrent:
        await asyncio.gather(*(ingestor.ingest_raw(b) for b in batches))
    else:
        for b in batches:
            await ingestor.ingest_raw(b)
            await projector.run_until_caught_up()
    await projector.run_until_caught_up()

    used = sorted({t for tokens, _ in events for t in tokens})
    member = {t: await resolved(store, ingestor.keyring, prefix, t) for t in used}
    got: dict[str, set[int]] = {}
    for t, m in member.items():
        got.setdefault(m, set()).add(t)
    assert {frozenset(g) for g in got.values()} == reference_groups([e for e, _ in events])
    # Every event landed in (a stream that resolves to) its aliases' member.
    async with store.pool.acquire() as c:
        for k, (tokens, _) in enumerate(events):
            stream = await c.fetchval(
                "SELECT stream_id FROM events WHERE event_id = $1", f"{prefix}-{k}"
            )
            mid = stream.removeprefix("member-")
            while (
                nxt := await c.fetchval("SELECT merged_into FROM members WHERE member_id = $1", mid)
            ) is not None:
                mid = nxt
            assert mid == member[next(iter(tokens))]


async def table(store: PostgresEventStore) -> list[dict]:
    async with store.pool.acquire() as c:
        return [dict(r) for r in await c.fetch("SELECT * FROM member_profiles ORDER BY 1")]


async def test_grouping_matches_reference_and_rebuild_matches_live(database_url: str) -> None:
    def run() -> None:
        loop = asyncio.new_event_loop()
        store = loop.run_until_complete(
            PostgresEventStore.connect(database_url, min_size=1, max_size=6)
        )
        conf = Settings(secret_key=SecretStr("p" * 40))
        ingestor = Ingestor(store, conf)
        projector = ProfileProjector(store, conf, clock=lambda: T0 + dt.timedelta(days=3))

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(scenario)
        def prop(case: tuple) -> None:
            loop.run_until_complete(check(store, ingestor, projector, case))

        try:
            prop()
            live = loop.run_until_complete(table(store))
            assert live, "the projection holds profiles"
            loop.run_until_complete(projector.rebuild())
            assert loop.run_until_complete(table(store)) == live
        finally:
            loop.run_until_complete(store.close())
            loop.close()

    await asyncio.to_thread(run)
