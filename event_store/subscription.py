"""Subscriptions: catch up from a stored checkpoint, then follow live appends.

Delivery is at-least-once. With `auto_checkpoint`, the place is saved once the consumer has
asked for the event after a batch (so everything before it was handled); a crash re-delivers
at most one batch. Consumers that write their own results (projections) turn it off and save
the checkpoint in the same transaction as their writes, which makes them exactly-once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import asyncpg

from .model import Cursor, RecordedEvent, UndecodableEvent

if TYPE_CHECKING:
    from .postgres import PostgresEventStore


class Subscription:
    def __init__(
        self,
        store: PostgresEventStore,
        name: str,
        *,
        types: Iterable[str] | None,
        category: str | None,
        partition: int,
        partitions: int,
        batch_size: int,
        auto_checkpoint: bool,
        follow: bool,
        min_poll: float,
        max_poll: float,
    ) -> None:
        if not name:
            raise ValueError("a subscription needs a name (its checkpoint is stored under it)")
        self.store = store
        self.name = name
        self.types = list(types) if types is not None else None
        self.category = category
        self.partition = partition
        self.partitions = partitions
        self.batch_size = batch_size
        self.auto_checkpoint = auto_checkpoint
        self.follow = follow
        self.min_poll = min_poll
        self.max_poll = max_poll
        self.cursor: Cursor | None = None
        """The place just past what this subscription has handed out."""
        self.undecodable: list[UndecodableEvent] = []
        """Rows of the batch just yielded that could not be decoded (not among its events):
        the consumer parks them (`journeyman.event_store.deadletters.park`) and goes on."""
        self._saved: Cursor | None = None
        self._closed = False

    async def save_checkpoint(
        self, cursor: Cursor | None = None, *, conn: asyncpg.Connection | None = None
    ) -> None:
        """Save `cursor` (default: the current place), optionally in the caller's transaction."""
        cursor = cursor or self.cursor
        if cursor is None or cursor == self._saved:
            return
        await self.store.save_checkpoint(
            self.name, cursor, self.partition, self.partitions, conn=conn
        )
        self._saved = cursor

    def close(self) -> None:
        self._closed = True

    async def batches(self) -> AsyncIterator[tuple[list[RecordedEvent], Cursor]]:
        """Yield `(events, cursor_after_them)`; empty batches are not yielded (a batch of
        undecodable rows only is yielded with no events, see `undecodable`)."""
        if self.cursor is None:
            self.cursor = await self.store.load_checkpoint(
                self.name, self.partition, self.partitions
            )
            self._saved = self.cursor
        delay = self.min_poll
        while not self._closed:
            self.undecodable = []
            events, nxt = await self.store.read_all(
                self.cursor,
                types=self.types,
                category=self.category,
                partition=self.partition,
                partitions=self.partitions,
                limit=self.batch_size,
                undecodable=self.undecodable,
            )
            if events or self.undecodable:
                delay = self.min_poll
                yield events, nxt
                self.cursor = nxt
                if self.auto_checkpoint:
                    await self.save_checkpoint()
                continue
            self.cursor = nxt
            if self.auto_checkpoint:
                await self.save_checkpoint()
            if not self.follow:
                return
            await self.store.wait_for_append(delay)
            delay = min(delay * 2, self.max_poll)

    async def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        async for events, _ in self.batches():
            for event in events:
                yield event
