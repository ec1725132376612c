"""API keys: high-entropy tokens, stored only as a SHA-256 hash, with scopes.

A token reads `jm_<key_id>_<secret>`: `key_id` (12 hex characters) finds the row, the
SHA-256 of the whole token must match `secret_hash` (compared in constant time). Only the
creator ever sees the token. Scopes: `ingest` (send events), `read` (profiles, timelines),
`admin` (everything, including managing keys).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import asyncpg

Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "admin")
_PREFIX = "jm_"
_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {list(scopes)}")
    return sorted(set(scopes))


async def create_key(
    conn: asyncpg.Connection | asyncpg.Pool, scopes: list[str], name: str = ""
) -> tuple[str, ApiKey]:
    """Create a key; returns the token (shown once) and the key."""
    scope_list = parse_scopes(scopes)
    key_id = secrets.token_hex(6)
    token = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_hash, scopes, name) VALUES ($1, $2, $3, $4)",
        key_id,
        _hash(token),
        scope_list,
        name,
    )
    return token, ApiKey(key_id, name, frozenset(scope_list))


async def revoke_key(conn: asyncpg.Connection | asyncpg.Pool, key_id: str) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


async def list_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at"
    )


class KeyVerifier:
    """Checks tokens against `api_keys`, caching answers for a few seconds (a revoked key
    stops working within `_CACHE_SECONDS`)."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float = _CACHE_SECONDS) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, ApiKey | None]] = {}

    async def verify(self, token: str) -> ApiKey | None:
        if not token.startswith(_PREFIX) or len(token) > 200:
            return None
        if not (token.isascii() and token.isprintable()):
            return None  # no key has such characters (and PostgreSQL refuses a NUL)
        digest = _hash(token)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        key_id = token[len(_PREFIX) :].split("_", 1)[0]
        row = await self.pool.fetchrow(
            "SELECT key_id, name, scopes, secret_hash FROM api_keys "
            "WHERE key_id = $1 AND revoked_at IS NULL",
            key_id,
        )
        key = None
        if row is not None and hmac.compare_digest(bytes(row["secret_hash"]), digest):
            key = ApiKey(row["key_id"], row["name"], frozenset(row["scopes"]))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self.cache_seconds, key)
        return key


async def rotate_key(conn: asyncpg.Connection, key_id: str) -> tuple[str, ApiKey]:
    """Replace an active key by a new one with the same scopes and name, in one transaction:
    the new token works at once, the old one stops within `_CACHE_SECONDS`. Raises
    `LookupError` when `key_id` is not an active key."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT name, scopes FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL FOR UPDATE",
            key_id,
        )
        if row is None:
            raise LookupError(f"no active API key {key_id}")
        token, key = await create_key(conn, list(row["scopes"]), name=row["name"])
        await revoke_key(conn, key_id)
    return token, key
