"""Re-keying a member's identity rows: aliases and push subscriptions move to the new id
re-encrypted (their associated data names the member), and the old id becomes the member's
`user_id` alias. Part of `rekey_member`'s one transaction (`journeyman.engine.identity.rekey`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from .aliases import USER_ID
from .crypto import DataKey, Keyring


async def move_encrypted(
    conn: asyncpg.Connection,
    table: str,
    prefix: str,
    old: str,
    new: str,
    old_key: DataKey | None,
    new_key: DataKey | None,
) -> None:
    """Move the member's rows of `table` to the new id, their values re-encrypted (the
    associated data names the member). An emptied value (a tombstone) stays empty."""
    key_col = "blind" if table == "push_subscriptions" else "(kind, blind)"
    rows = await conn.fetch(
        f"SELECT kind, blind, value_enc FROM {table} WHERE member_id = $1 FOR UPDATE", old
    )
    for r in rows:
        value = bytes(r["value_enc"])
        if value and old_key is not None and new_key is not None:
            purpose = f"{prefix}:{r['kind']}"
            value = new_key.encrypt(old_key.decrypt(value, purpose), purpose)
        where = "blind = $3" if key_col == "blind" else "kind = $4 AND blind = $3"
        args: list[Any] = [new, value, r["blind"]]
        if key_col != "blind":
            args.append(r["kind"])
        await conn.execute(
            f"UPDATE {table} SET member_id = $1, value_enc = $2 WHERE {where}", *args
        )


async def record_user_id(
    conn: asyncpg.Connection, keyring: Keyring, old: str, new: str, new_key: DataKey | None
) -> None:
    """Record the old id as the `user_id` alias of the member (or of the member it was
    merged into), unless the alias exists already."""
    blind = keyring.blind(USER_ID, old)
    if await conn.fetchval(
        "SELECT 1 FROM member_aliases WHERE kind = $1 AND blind = $2", USER_ID, blind
    ):
        return
    owner = new
    for _ in range(16):
        nxt = await conn.fetchval("SELECT merged_into FROM members WHERE member_id = $1", owner)
        if nxt is None:
            break
        owner = nxt
    erased = await conn.fetchval(
        "SELECT erased_at IS NOT NULL FROM members WHERE member_id = $1", owner
    )
    key = new_key if owner == new else None
    if owner != new or key is None:
        wrapped = await conn.fetchval(
            "SELECT wrapped_key FROM member_keys WHERE member_id = $1", owner
        )
        if wrapped is not None:
            key = keyring.unwrap(owner, wrapped)
        elif not erased:
            key, wrapped = keyring.new_data_key(owner)
            await conn.execute(
                "INSERT INTO member_keys (member_id, wrapped_key) VALUES ($1, $2)", owner, wrapped
            )
    value = b"" if erased or key is None else key.encrypt(old.encode(), f"alias:{USER_ID}")
    await conn.execute(
        "INSERT INTO member_aliases (kind, blind, member_id, value_enc) VALUES ($1, $2, $3, $4)",
        USER_ID,
        blind,
        owner,
        value,
    )
