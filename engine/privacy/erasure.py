"""Erasure (GDPR art. 17, CCPA deletion): crypto-shred a member.

`erase_member` does, for a member and every member merged into it:

1. in one transaction: delete the aliases, push subscriptions and the data key
   (`journeyman.engine.identity.forget_identity`), mark the member erased, and append
   `member.erased`
   to the member's stream. The events stay; whatever was encrypted under the data key
   (contact points, personal fields sealed inside events) can no longer be decrypted.
2. bring the profile projection up to date, so the `deliver` activity's "erased member"
   policy holds from the moment erasure returns (the projection's `member.erased` fold
   clears consent, traits, time zone and locale but keeps the counts);
3. terminate the member's running journeys in Temporal (the workflows listed in
   `journey_instances`), so no timer wakes up to send to them. Without a Temporal client
   the journeys are left to run: every send they attempt is suppressed (no contact point,
   erased profile) — the result says how many were left.
4. give a member created before member ids became opaque (its store id is still the
   client's id, perhaps an email) an id of the engine's own (`journeyman.engine.identity.rekey`), so
   that the client's id is left nowhere in the store. A member whose journey was left
   running keeps its id until `journeyman members rekey` runs after the journey ends; the
   result counts such ids (`ids_in_clear`).

Erasing twice is harmless: the second call finds no key and appends nothing new.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from journeyman.engine.activities.instances import mark_gone
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import forget_identity, resolve_member_id
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.identity.member_ids import is_minted
from journeyman.engine.identity.rekey import rekey_member
from journeyman.event_store import (
    ANY,
    NewEvent,
    PostgresEventStore,
    StaleTransactionError,
    lock_streams,
)
from journeyman.event_store.retry import retry_lost_races
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)


class UnknownMember(LookupError):
    """No member with this id exists."""


@dataclass
class ErasureResult:
    member_id: str
    erased_ids: list[str]
    already_erased: bool
    journeys_terminated: list[str] = field(default_factory=list)
    journeys_left_running: list[str] = field(default_factory=list)
    erased_at: dt.datetime | None = None
    ids_in_clear: int = 0
    """Erased ids that are still a client's id (a journey was left running)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "erased_ids": self.erased_ids,
            "already_erased": self.already_erased,
            "journeys_terminated": self.journeys_terminated,
            "journeys_left_running": self.journeys_left_running,
            "erased_at": self.erased_at.isoformat() if self.erased_at else None,
            "ids_in_clear": self.ids_in_clear,
        }


async def member_ids_of(
    conn: asyncpg.Connection | asyncpg.Pool, member_id: str, keyring: Keyring | None = None
) -> list[str]:
    """The surviving member of `member_id` (a client's user id, with `keyring`, or the
    store's member id) first, then every member merged into it (transitively). Raises
    `UnknownMember` for an unknown id."""
    survivor = await resolve_member_id(conn, member_id, keyring)
    rows = await conn.fetch(
        """
        WITH RECURSIVE merged(member_id) AS (
            SELECT member_id FROM members WHERE member_id = $1
            UNION
            SELECT m.member_id FROM members m JOIN merged ON m.merged_into = merged.member_id
        )
        SELECT member_id FROM merged
        """,
        survivor,
    )
    ids = [r["member_id"] for r in rows]
    if not ids:
        # a member known only from its stream (events appended without identity)
        has_stream = await conn.fetchval(
            "SELECT 1 FROM events WHERE stream_id = $1 LIMIT 1", f"member-{survivor}"
        )
        if not has_stream:
            raise UnknownMember(f"member {member_id} is unknown")
        return [survivor]
    return [survivor, *sorted(i for i in ids if i != survivor)]


async def erase_member(
    store: PostgresEventStore,
    member_id: str,
    *,
    settings: Settings,
    temporal: Client | None = None,
    requested_by: str = "api",
    reason: str = "",
) -> ErasureResult:
    """Crypto-shred `member_id` (see the module docstring). `UnknownMember` if unknown."""
    pool = store.pool
    # The store's id of the member (UnknownMember before any write).
    member_id = (await member_ids_of(pool, member_id, Keyring(settings.resolved_secret())))[0]
    # The member's stream moved on under the transaction: redo all of it.
    ids, erased_before, erased_at = await retry_lost_races(
        lambda: _shred(store, member_id, requested_by, reason),
        on=(StaleTransactionError, asyncpg.DeadlockDetectedError),
    )
    survivor = ids[0]
    result = ErasureResult(survivor, ids, erased_before is not None, erased_at=erased_at)

    from journeyman.engine.profiles import ProfileProjector

    await ProfileProjector(store, settings).run_until_caught_up()

    rows = await pool.fetch(
        "SELECT workflow_id FROM journey_instances "
        "WHERE member_id = ANY($1::text[]) AND (running OR pending) ORDER BY workflow_id",
        ids,
    )
    for r in rows:
        wid = r["workflow_id"]
        if temporal is None:
            result.journeys_left_running.append(wid)
            continue
        try:
            await temporal.get_workflow_handle(wid).terminate(reason="member erased")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                log.warning("could not terminate journey %s: %s", wid, err.status.name)
                result.journeys_left_running.append(wid)
                continue
        await mark_gone(pool, wid)
        result.journeys_terminated.append(wid)
    await _rekey_legacy(store, settings, result)
    log.info(
        "erased a member: %d id(s), %d journey(s) terminated, %d left",
        len(ids),
        len(result.journeys_terminated),
        len(result.journeys_left_running),
    )
    return result


async def _rekey_legacy(
    store: PostgresEventStore, settings: Settings, result: ErasureResult
) -> None:
    """Step 4: re-key the erased ids that are still a client's id."""
    legacy = [i for i in result.erased_ids if not is_minted(i)]
    if not legacy:
        return
    keyring = Keyring(settings.resolved_secret())
    renamed: dict[str, str] = {}
    for old in legacy:
        outcome, new = await rekey_member(store, keyring, old, wait_for_routing=False)
        if outcome == "rekeyed":
            renamed[old] = new
        else:
            result.ids_in_clear += 1
    if result.ids_in_clear:
        log.warning(
            "an erased member keeps a client's id as its store id while its journeys run: "
            "run `journeyman members rekey` once they end"
        )
    result.member_id = renamed.get(result.member_id, result.member_id)
    result.erased_ids = [renamed.get(i, i) for i in result.erased_ids]


async def _shred(
    store: PostgresEventStore, member_id: str, requested_by: str, reason: str
) -> tuple[list[str], dt.datetime | None, dt.datetime]:
    async with store.pool.acquire() as conn, conn.transaction():
        ids = await _lock_members(conn, member_id)
        survivor = ids[0]
        # One erasure of a member at a time; the second one sees the first one's work.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('jm-erase:' || $1, 0))", survivor
        )
        erased_before = await conn.fetchval(
            "SELECT erased_at FROM members WHERE member_id = $1", survivor
        )
        for mid in ids:
            await forget_identity(conn, mid)
        erased_at = await conn.fetchval(
            "SELECT erased_at FROM members WHERE member_id = $1", survivor
        ) or dt.datetime.now(dt.UTC)
        event = NewEvent(
            "member.erased",
            {"erased_ids": ids, "requested_by": requested_by, "reason": reason[:200]},
            {"source": "privacy"},
            event_id=f"member.erased:{survivor}",
            occurred_at=erased_at,
        )
        await store.append(f"member-{survivor}", [event], ANY, conn=conn)
    return ids, erased_before, erased_at


async def _lock_members(conn: asyncpg.Connection, member_id: str) -> list[str]:
    """The ids `member_ids_of` gives, with their `members` rows locked (`FOR UPDATE`, in id
    order) so that no batch can link an alias to them, merge one more member into them or
    use their data key until the erasure commits: ingestion holds the members it resolves
    `FOR KEY SHARE`, so each waits for the other."""
    locked: set[str] = set()
    while True:
        ids = await member_ids_of(conn, member_id)
        if set(ids) <= locked:
            return ids
        # Their streams first, as an ingest batch takes them before the members it names
        # (`event_store.lock_streams`): the same order on both sides, so neither deadlocks.
        await lock_streams(conn, [f"member-{m}" for m in sorted(set(ids) - locked)])
        await conn.execute(
            "SELECT 1 FROM members WHERE member_id = ANY($1::text[]) ORDER BY member_id FOR UPDATE",
            sorted(set(ids) - locked),
        )
        locked |= set(ids)
