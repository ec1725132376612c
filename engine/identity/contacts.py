"""Contact points: a member's email addresses, phone numbers and push subscriptions,
decrypted on demand for delivery and export; and forgetting them (erasure)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from journeyman.engine.identity.crypto import Keyring, load_data_keys, shred_member_key

from .aliases import CONTACT_KINDS, EXTERNAL_PREFIX, USER_ID


async def resolve_member_id(
    conn: asyncpg.Connection | asyncpg.Pool, member_id: str, keyring: Keyring | None = None
) -> str:
    """The surviving member of `member_id`: a client's user id (the `user_id` alias) or the
    store's own member id, followed through merges. With no `keyring`, only store ids."""
    if keyring is not None:
        owner = await conn.fetchval(
            "SELECT member_id FROM member_aliases WHERE kind = $1 AND blind = $2",
            USER_ID,
            keyring.blind(USER_ID, member_id),
        )
        if owner is not None:
            member_id = owner
    for _ in range(16):
        nxt = await conn.fetchval("SELECT merged_into FROM members WHERE member_id = $1", member_id)
        if nxt is None:
            return member_id
        member_id = nxt
    return member_id


async def get_contact_points(
    pool: asyncpg.Pool | asyncpg.Connection,
    member_id: str,
    *,
    keyring: Keyring | None = None,
) -> dict[str, Any]:
    """Decrypted contact points of a member (following merges).

    Returns `{"member_id", "email", "emails", "phone", "phones", "push", "external"}`:
    `email`/`phone` are the most recently linked ones (None when there is none), the plural
    keys list all of them newest first, `push` lists push subscriptions as they were sent
    (`{"type": "webpush", "endpoint": …, "keys": {…}}` or `{"type": "fcm", "token": …}`),
    and `external` maps each external system to the member's newest id in it.
    An erased member, or one whose key was shredded, has none.
    """
    keyring = keyring or Keyring.from_settings()
    member_id = await resolve_member_id(pool, member_id, keyring)
    out: dict[str, Any] = {
        "member_id": member_id,
        "email": None,
        "emails": [],
        "phone": None,
        "phones": [],
        "push": [],
        "external": {},
    }
    keys = await load_data_keys(pool, keyring, [member_id])
    key = keys.get(member_id)
    if key is None:
        return out
    rows = await pool.fetch(
        "SELECT kind, value_enc FROM member_aliases WHERE member_id = $1 "
        "AND (kind = ANY($2) OR kind LIKE 'external:%') ORDER BY created_at DESC, kind",
        member_id,
        sorted(CONTACT_KINDS),
    )
    for r in rows:
        value = key.decrypt(r["value_enc"], f"alias:{r['kind']}").decode()
        system = r["kind"].removeprefix(EXTERNAL_PREFIX)
        if system != r["kind"]:
            out["external"].setdefault(system, value)
        else:
            out[f"{r['kind']}s"].append(value)
    out["email"] = out["emails"][0] if out["emails"] else None
    out["phone"] = out["phones"][0] if out["phones"] else None
    for r in await pool.fetch(
        "SELECT kind, value_enc FROM push_subscriptions WHERE member_id = $1 "
        "ORDER BY updated_at DESC",
        member_id,
    ):
        out["push"].append(json.loads(key.decrypt(r["value_enc"], f"push:{r['kind']}")))
    return out


async def get_aliases(
    pool: asyncpg.Pool | asyncpg.Connection, member_id: str, *, keyring: Keyring | None = None
) -> dict[str, list[str]]:
    """Every alias of a member, decrypted, by kind (for export)."""
    keyring = keyring or Keyring.from_settings()
    keys = await load_data_keys(pool, keyring, [member_id])
    key = keys.get(member_id)
    out: dict[str, list[str]] = {}
    if key is None:
        return out
    for r in await pool.fetch(
        "SELECT kind, value_enc FROM member_aliases WHERE member_id = $1 ORDER BY created_at",
        member_id,
    ):
        out.setdefault(r["kind"], []).append(
            key.decrypt(r["value_enc"], f"alias:{r['kind']}").decode()
        )
    return out


async def forget_identity(conn: asyncpg.Connection, member_id: str) -> None:
    """Erasure's identity half: delete the member's aliases, push subscriptions, open carts
    and data key, and mark it erased. Call inside the transaction that appends `member.erased`.

    The `user_id` aliases stay as tombstones, blind index only (their encrypted value is
    emptied): a client sending that user id again is refused instead of starting a new
    record of the person. The blind index is an HMAC under the server secret; it does not
    reveal the id."""
    await conn.execute(
        "DELETE FROM member_aliases WHERE member_id = $1 AND kind <> $2", member_id, USER_ID
    )
    await conn.execute(
        "UPDATE member_aliases SET value_enc = ''::bytea WHERE member_id = $1 AND kind = $2",
        member_id,
        USER_ID,
    )
    await conn.execute("DELETE FROM push_subscriptions WHERE member_id = $1", member_id)
    await conn.execute("DELETE FROM carts WHERE member_id = $1", member_id)
    await shred_member_key(conn, member_id)
    await conn.execute(
        "UPDATE members SET erased_at = coalesce(erased_at, now()) WHERE member_id = $1",
        member_id,
    )
