"""Rows the store cannot read back, written straight into `events` (INSERT is allowed; the
append-only trigger forbids only UPDATE and DELETE)."""

from __future__ import annotations

import uuid

from journeyman.event_store import PostgresEventStore

BC_TIMESTAMP = "0001-01-01T00:00:00+14:00"
"""Stored by PostgreSQL as a date before year 1, which the driver cannot decode."""


async def insert_raw(
    store: PostgresEventStore,
    member: str,
    type: str = "page.viewed",
    *,
    occurred_at: str = "2026-01-01T00:00:00+00:00",
    data_sql: str = "'{}'::jsonb",
    metadata_sql: str = "'{}'::jsonb",
    event_id: str | None = None,
) -> int:
    """Insert one event row with raw SQL; returns its global position."""
    stream = f"member-{member}"
    event_id = event_id or f"raw-{uuid.uuid4().hex[:12]}"
    async with store.pool.acquire() as c:
        return await c.fetchval(
            "INSERT INTO events (stream_id, stream_version, event_id, type, data, metadata, "
            f"occurred_at) VALUES ($1, (SELECT coalesce(max(stream_version), -1) + 1 FROM events "
            f"WHERE stream_id = $1), $2, $3, {data_sql}, {metadata_sql}, $4::text::timestamptz) "
            "RETURNING global_position",
            stream,
            event_id,
            type,
            occurred_at,
        )


def huge_integer_sql(digits: int = 5000) -> str:
    """A JSON object holding an integer longer than Python's default digit limit."""
    return f"('{{\"n\": ' || repeat('7', {digits}) || '}}')::jsonb"
