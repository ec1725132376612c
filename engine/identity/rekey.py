"""Re-keying members created before member ids became opaque (migration `0008`).

Such a member still has the client's id (often an email or a phone number) as the store's
id: in its stream id `member-<id>`, in event ids and event fields, in every table that
names members, and in its journeys' workflow ids. `rekey_member` gives it a minted id
(`journeyman.engine.identity.member_ids`) and rewrites every reference in one transaction:

- the events of its stream move to `member-<new id>` and keep their positions, versions
  and transaction ids (so no subscriber reads them again and no cursor changes); event ids,
  fields that hold the member id (`member_id`, `survivor`, `merged`, `erased_ids`, workflow
  and correlation ids) and the delivery streams of its messages are rewritten; sealed
  values are re-encrypted, since their associated data names the member and the event id.
  This is the one rewrite of stored events the append-only trigger allows (migration
  `0012`): only inside a transaction that names the old and the new id;
- the rows of `members`, `member_keys` (the same data key, wrapped for the new id),
  `member_aliases` and `push_subscriptions` (re-encrypted), `member_profiles`,
  `journey_instances`, `message_ledger`, `frequency_cap_ledger`, `delivery_blocks`,
  `segment_memberships`, `carts`, `dead_letters`, and any other table with a `member_id`
  or `merged_into` column;
- the old id becomes the member's `user_id` alias (its HMAC, and its value encrypted under
  the member's data key, as the resolver records it), so the client's id keeps reaching the
  same person. An erased member gets the alias as a tombstone (HMAC only): new events with
  that id stay refused.

An id of 8 characters or more (every email address and phone number) is replaced wherever
it occurs in an event id or a string of an event, but never inside a longer word or number;
a shorter one only where the engine writes member ids (between `/`, `:` or `#` in ids, and
as the whole value of a member field).

The member's row is locked `FOR UPDATE`, as erasure does: an ingest batch naming it (which
holds it `FOR KEY SHARE`) finishes first, and one arriving meanwhile waits, then finds the
row gone and retries on the new id. The profile projection's lock is held too, so that no
batch of it writes the old id back. A member with a running or pending journey is skipped:
the workflow id holds the old id, and a new trigger would start a second run under the new
one. Running again later re-keys it. So is a member with events the journey dispatcher has
not routed yet (past its checkpoint): it may be routing them right now, under the old id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from journeyman.engine.core.readers import DISPATCHER
from journeyman.engine.identity.crypto import DataKey, Keyring
from journeyman.engine.identity.rekey_rows import move_encrypted, record_user_id
from journeyman.engine.identity.sealing import SEALED, has_sealed, reseal
from journeyman.event_store import PostgresEventStore
from journeyman.event_store.retry import retry_lost_races
from journeyman.event_store.validation import to_json

from .member_ids import MINTED_SQL, is_minted, new_member_id

log = logging.getLogger(__name__)

Outcome = Literal["rekeyed", "running", "unrouted", "opaque", "gone"]

_UNROUTED = """
SELECT 1 FROM events e
WHERE e.stream_id = $1 AND EXISTS (
    SELECT 1 FROM subscription_checkpoints c
    WHERE c.name = $2 AND c.partitions = (
        SELECT partitions FROM subscription_checkpoints WHERE name = $2
        ORDER BY updated_at DESC LIMIT 1)
      AND (e.tx_id, e.global_position) > (c.tx_id::text::xid8, c.position))
LIMIT 1
"""

_MEMBER_FIELDS = frozenset({"member_id", "survivor", "merged", "erased_ids", "user_id"})
"""Event fields whose value is a member id (or a list of them)."""
_ID_FIELDS = frozenset(
    {"workflow_id", "correlation_id", "causation_id", "source_event_id", "event_id"}
)
"""Event fields that hold ids built from member ids (workflow ids, event ids)."""
_LONG = 8
_HANDLED = (
    "events",
    "members",
    "member_keys",
    "member_aliases",
    "push_subscriptions",
    "member_profiles",
    "journey_instances",
    "message_ledger",
    "dead_letters",
)
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@dataclass
class RekeyCounts:
    """What a run did (or, with `dry_run`, would do)."""

    rekeyed: int = 0
    skipped_running: int = 0
    skipped_unrouted: int = 0
    """Members with events the journey dispatcher has not routed yet."""
    already_opaque: int = 0
    legacy: int = 0
    """Members that still carry a client's id after the run."""

    def to_json(self) -> dict[str, int]:
        return {
            "rekeyed": self.rekeyed,
            "skipped_running": self.skipped_running,
            "skipped_unrouted": self.skipped_unrouted,
            "already_opaque": self.already_opaque,
            "legacy_left": self.legacy,
        }


class _Ids:
    """Rewrites of strings that may hold the old id."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self.anywhere = len(old) >= _LONG or "@" in old
        esc = re.escape(old)
        self._bounded = re.compile(rf"(?:(?<=[/:#])|^){esc}(?=[/:#]|$)")
        # never inside a longer word or number: `customer-1` is not in `customer-12`
        self._whole = re.compile(rf"(?<![A-Za-z0-9]){esc}(?![A-Za-z0-9])")

    def id(self, value: str) -> str:
        """An event id, workflow id or correlation id."""
        if self.anywhere:
            return self._whole.sub(self.new, value) if self.old in value else value
        return self._bounded.sub(self.new, value)

    def value(self, value: Any, key: str | None = None) -> Any:
        """A JSON value of an event's data or metadata (sealed values are left alone)."""
        if isinstance(value, dict):
            if key == SEALED or set(value) == {SEALED}:
                return value
            return {k: v if k == SEALED else self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if self.anywhere:
            return self._whole.sub(self.new, value) if self.old in value else value
        if key in _MEMBER_FIELDS and value == self.old:
            return self.new
        if key in _ID_FIELDS or value.startswith("journey/"):
            return self._bounded.sub(self.new, value)
        return value


_UNROUTED_OF_ROW = _UNROUTED.replace("$1", "'member-' || m.member_id").replace("$2", "$1")


async def count(pool: asyncpg.Pool | asyncpg.Connection) -> RekeyCounts:
    """How many members are opaque, how many carry a client's id, and how many of those a
    run would skip now (a running or pending journey; events not routed yet)."""
    row = await pool.fetchrow(
        f"""
        WITH m AS (
            SELECT m.member_id, m.member_id ~ '{MINTED_SQL}' AS opaque,
                   EXISTS (SELECT 1 FROM journey_instances j WHERE j.member_id = m.member_id
                           AND (j.running OR j.pending)) AS running
            FROM members m
        )
        SELECT count(*) FILTER (WHERE opaque) AS opaque,
               count(*) FILTER (WHERE NOT opaque) AS legacy,
               count(*) FILTER (WHERE NOT opaque AND running) AS running,
               count(*) FILTER (WHERE NOT opaque AND NOT running AND EXISTS (
                   {_UNROUTED_OF_ROW})) AS unrouted
        FROM m
        """,
        DISPATCHER,
    )
    return RekeyCounts(
        skipped_running=row["running"],
        skipped_unrouted=row["unrouted"],
        already_opaque=row["opaque"],
        legacy=row["legacy"],
    )


async def legacy_member_ids(pool: asyncpg.Pool | asyncpg.Connection) -> list[str]:
    """Members whose store id is not a minted one, oldest first."""
    rows = await pool.fetch(
        f"SELECT member_id FROM members WHERE member_id !~ '{MINTED_SQL}' ORDER BY seq"
    )
    return [r["member_id"] for r in rows]


async def rekey_all(
    store: PostgresEventStore,
    keyring: Keyring,
    *,
    concurrency: int = 1,
    on_member: Callable[[Outcome], None] | None = None,
) -> RekeyCounts:
    """Re-key every member created before ids became opaque (idempotent, resumable: each
    member is its own transaction, and a re-keyed member is opaque from then on), up to
    `concurrency` members at a time (each holds a connection of the store's pool)."""
    result = RekeyCounts()
    todo = iter(await legacy_member_ids(store.pool))
    columns = await other_member_columns(store.pool)

    async def worker() -> None:
        for member_id in todo:
            outcome, _ = await rekey_member(store, keyring, member_id, columns=columns)
            if outcome == "rekeyed":
                result.rekeyed += 1
            elif outcome == "running":
                result.skipped_running += 1
            elif outcome == "unrouted":
                result.skipped_unrouted += 1
            if on_member is not None:
                on_member(outcome)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    after = await count(store.pool)
    result.already_opaque = after.already_opaque - result.rekeyed
    result.legacy = after.legacy
    return result


async def rekey_member(
    store: PostgresEventStore,
    keyring: Keyring,
    member_id: str,
    *,
    columns: list[tuple[str, str]] | None = None,
    wait_for_routing: bool = True,
) -> tuple[Outcome, str]:
    """Give `member_id` a minted id and rewrite every reference to it (module docstring).
    Returns the outcome and the member's id afterwards. `columns`: the other tables'
    member columns (`other_member_columns`), when the caller has them already. Without
    `wait_for_routing`, events the dispatcher has not routed yet do not hold it back
    (erasure: the member's journeys have just been ended, and its sends are suppressed)."""
    if is_minted(member_id):
        return "opaque", member_id
    if columns is None:
        columns = await other_member_columns(store.pool)
    known_columns = columns

    async def once() -> tuple[str, str]:
        async with store.pool.acquire() as conn, conn.transaction():
            return await _rekey(
                conn, keyring, member_id, new_member_id(), known_columns, wait_for_routing
            )

    return await retry_lost_races(once, on=_RETRYABLE)


async def _rekey(
    conn: asyncpg.Connection,
    keyring: Keyring,
    old: str,
    new: str,
    columns: list[tuple[str, str]],
    wait_for_routing: bool,
) -> tuple[Outcome, str]:
    from journeyman.engine.core.readers import JOURNEY_STATS_LOCK as ANALYTICS_LOCK
    from journeyman.engine.core.readers import PROFILES_LOCK as PROJECTOR_LOCK

    # Shared: re-keys of several members run side by side; the projector's batches (which
    # take it exclusively) wait for them, and they for a batch.
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", PROJECTOR_LOCK)
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ANALYTICS_LOCK)
    row = await conn.fetchrow(
        "SELECT merged_into, erased_at FROM members WHERE member_id = $1 FOR UPDATE", old
    )
    if row is None:
        return "gone", old
    if await conn.fetchval(
        "SELECT 1 FROM journey_instances WHERE member_id = $1 AND (running OR pending) LIMIT 1",
        old,
    ):
        return "running", old
    if wait_for_routing and await conn.fetchval(_UNROUTED, f"member-{old}", DISPATCHER):
        return "unrouted", old
    await conn.execute(
        "SELECT set_config('journeyman.rekey_from', $1, true), "
        "set_config('journeyman.rekey_to', $2, true)",
        old,
        new,
    )
    ids = _Ids(old, new)
    wrapped = await conn.fetchval("SELECT wrapped_key FROM member_keys WHERE member_id = $1", old)
    old_key = keyring.unwrap(old, wrapped) if wrapped is not None else None
    new_key = old_key.for_member(new) if old_key is not None else None

    await _rewrite_events(conn, ids, old_key, new_key)
    # An append that committed while this ran is moved too.
    while await conn.fetchval(
        "SELECT 1 FROM events WHERE stream_id = $1 LIMIT 1", f"member-{old}"
    ) and await _rewrite_events(conn, ids, old_key, new_key):
        pass
    await conn.execute(
        "UPDATE members SET member_id = CASE WHEN member_id = $1 THEN $2 ELSE member_id END, "
        "merged_into = CASE WHEN merged_into = $1 THEN $2 ELSE merged_into END "
        "WHERE member_id = $1 OR merged_into = $1",
        old,
        new,
    )
    if wrapped is not None:
        await conn.execute(
            "UPDATE member_keys SET member_id = $2, wrapped_key = $3 WHERE member_id = $1",
            old,
            new,
            keyring.rewrap(old, wrapped, new),
        )
    await move_encrypted(conn, "member_aliases", "alias", old, new, old_key, new_key)
    await move_encrypted(conn, "push_subscriptions", "push", old, new, old_key, new_key)
    await record_user_id(conn, keyring, old, new, new_key)
    await conn.execute(
        "UPDATE member_profiles SET "
        "member_id = CASE WHEN member_id = $1 THEN $2 ELSE member_id END, "
        "merged_into = CASE WHEN merged_into = $1 THEN $2 ELSE merged_into END "
        "WHERE member_id = $1 OR merged_into = $1",
        old,
        new,
    )
    for table in ("journey_instances", "message_ledger"):
        key = "workflow_id" if table == "journey_instances" else "delivery_id"
        rows = await conn.fetch(
            f"SELECT {key} AS k, workflow_id FROM {table} WHERE member_id = $1", old
        )
        if rows:
            await conn.execute(
                f"UPDATE {table} t SET member_id = $1, workflow_id = x.w "
                f"FROM unnest($2::text[], $3::text[]) AS x(k, w) WHERE t.{key} = x.k",
                new,
                [r["k"] for r in rows],
                [None if r["workflow_id"] is None else ids.id(r["workflow_id"]) for r in rows],
            )
    for table, column in columns:
        if column == "workflow_id":  # journey/<name>/<member>[/<key>]: the id is a segment
            found = await conn.fetch(
                f"SELECT DISTINCT {column} AS w FROM {table} "
                f"WHERE {column} LIKE 'journey/%' AND strpos({column}, $1) > 0",
                old,
            )
            for r in found:
                if (renamed := ids.id(r["w"])) != r["w"]:
                    await conn.execute(
                        f"UPDATE {table} SET {column} = $2 WHERE {column} = $1", r["w"], renamed
                    )
            continue
        await conn.execute(f"UPDATE {table} SET {column} = $2 WHERE {column} = $1", old, new)
    log.debug("re-keyed a member created before opaque ids")
    return "rekeyed", new


async def _rewrite_events(
    conn: asyncpg.Connection, ids: _Ids, old_key: DataKey | None, new_key: DataKey | None
) -> int:
    """Rewrite the events that name the old id; how many changed."""
    old_stream = f"member-{ids.old}"
    new_stream = f"member-{ids.new}"
    deliveries = await conn.fetch(
        """
        SELECT data->>'delivery_id' AS d FROM events
        WHERE stream_id = $1 AND data ? 'delivery_id'
        UNION SELECT delivery_id FROM message_ledger WHERE member_id = $2
        UNION SELECT delivery_id FROM frequency_cap_ledger WHERE member_id = $2
        """,
        old_stream,
        ids.old,
    )
    streams = [f"delivery-{r['d']}" for r in deliveries if r["d"]]
    # FOR UPDATE: a re-key of a member merged with this one, running beside it, may be
    # rewriting the same merge events; this one then reads them as that one left them.
    rows = await conn.fetch(
        """
        SELECT global_position, stream_id, event_id, data::text AS data,
               metadata::text AS metadata
        FROM events
        WHERE stream_id = $1 OR stream_id = ANY($2::text[])
           OR (type IN ('member.merged', 'member.erased')
               AND (data->>'merged' = $3 OR data->>'survivor' = $3 OR data->'erased_ids' ? $3))
        ORDER BY global_position
        FOR UPDATE
        """,
        old_stream,
        streams,
        ids.old,
    )
    changed: tuple[list[int], list[str], list[str], list[str], list[str]] = ([], [], [], [], [])
    for r in rows:
        own = r["stream_id"] == old_stream
        stream = new_stream if own else r["stream_id"]
        event_id = ids.id(r["event_id"])
        data = json.loads(r["data"])
        if own and old_key is not None and new_key is not None and has_sealed(data):
            data = reseal(data, old_key, r["event_id"], new_key, event_id)
        data = ids.value(data)
        meta = json.loads(r["metadata"])
        new_meta = ids.value(meta)
        if (stream, event_id, data, new_meta) == (
            r["stream_id"],
            r["event_id"],
            json.loads(r["data"]),
            meta,
        ):
            continue
        data_text, meta_text = to_json(data), to_json(new_meta)
        for col, v in zip(
            changed, (r["global_position"], stream, event_id, data_text, meta_text), strict=True
        ):
            col.append(v)
    if not changed[0]:
        return 0
    await conn.execute(
        "UPDATE events e SET stream_id = x.s, event_id = x.i, data = x.d::jsonb, "
        "metadata = x.m::jsonb "
        "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) "
        "AS x(p, s, i, d, m) WHERE e.global_position = x.p",
        *changed,
    )
    await conn.execute(
        "UPDATE dead_letters d SET stream_id = x.s, event_id = x.i "
        "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(p, s, i) "
        "WHERE d.global_position = x.p",
        *changed[:3],
    )
    return len(changed[0])


async def other_member_columns(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> list[tuple[str, str]]:
    """Text columns named `member_id`, `merged_into` or `workflow_id` (which holds the member
    id as a segment) of public tables not handled above (tables added later, such as the
    analytics projection's, are re-keyed too)."""
    rows = await conn.fetch(
        "SELECT quote_ident(table_name) AS t, quote_ident(column_name) AS c "
        "FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name IN ('member_id', 'merged_into', 'workflow_id') "
        "AND data_type = 'text' "
        "AND table_name <> ALL($1::text[]) ORDER BY 1, 2",
        list(_HANDLED),
    )
    return [(r["t"], r["c"]) for r in rows]
