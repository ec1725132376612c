"""A batch of events being routed by the dispatcher: one pooled connection its routing tasks
share, and the view of its members' journey runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import asyncpg
from journeyman.engine.activities import instances as inst
from journeyman.event_store import RecordedEvent


class SerialConnection:
    """One pooled connection shared by a batch's routing tasks, one statement at a time.

    Every statement through the pool itself would cost two round trips (the statement, then
    the reset when the connection goes back); a batch holds one connection instead."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self._lock:
            return await self._conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        async with self._lock:
            return await self._conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: object) -> object:
        async with self._lock:
            return await self._conn.fetchval(query, *args)

    async def execute(self, query: str, *args: object) -> str:
        async with self._lock:
            return await self._conn.execute(query, *args)


@dataclass
class RoutingBatch:
    """One batch being routed: its connection, its events by member, its clock reading, and
    the view of those members' journey runs."""

    db: SerialConnection
    by_member: dict[str, list[RecordedEvent]]
    now: dt.datetime
    views: dict[str, inst.MemberView] = field(default_factory=dict)
