"""Dashboard sessions: what the sign-in cookie holds instead of the admin key.

The cookie carries a random session id (256 bits); only its SHA-256 is stored, with the admin
key that opened it and an expiry. A session admits its holder while it has not expired, has
not been closed (sign-out deletes the row) and its key is still an active admin key —
revoking the key ends its sessions too. Expired rows are swept at each sign-in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import asyncpg
from sqlalchemy import Column, DateTime, Index, LargeBinary, MetaData, Table, Text, func

metadata = MetaData()

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("session_hash", LargeBinary, primary_key=True, comment="sha256 of the session id"),
    Column("key_id", Text, nullable=False, comment="the admin key that signed in"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("dashboard_sessions_expires_idx", "expires_at"),
)

_Conn = asyncpg.Connection | asyncpg.Pool


def _hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


async def open_session(conn: _Conn, key_id: str, lifetime: dt.timedelta) -> str:
    """A new session for `key_id`; returns the session id (the cookie's value)."""
    session_id = secrets.token_urlsafe(32)
    await conn.execute("DELETE FROM dashboard_sessions WHERE expires_at <= now()")
    await conn.execute(
        "INSERT INTO dashboard_sessions (session_hash, key_id, expires_at) "
        "VALUES ($1, $2, now() + $3::interval)",
        _hash(session_id),
        key_id,
        lifetime,
    )
    return session_id


async def session_key(conn: _Conn, session_id: str) -> str | None:
    """The admin key id behind a live session, or None (unknown, expired, closed, or its key
    revoked or no longer admin)."""
    return await conn.fetchval(
        "SELECT s.key_id FROM dashboard_sessions s JOIN api_keys k ON k.key_id = s.key_id "
        "WHERE s.session_hash = $1 AND s.expires_at > now() "
        "AND k.revoked_at IS NULL AND 'admin' = ANY(k.scopes)",
        _hash(session_id),
    )


async def close_session(conn: _Conn, session_id: str) -> None:
    await conn.execute("DELETE FROM dashboard_sessions WHERE session_hash = $1", _hash(session_id))
