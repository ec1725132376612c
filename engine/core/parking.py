"""Dead letters, the engine's side: no reader of the store halts on one event.

A subscriber (the profile projection, the journey analytics projection, each dispatcher
partition) tries an event whose processing fails up to `JOURNEYMAN_DEAD_LETTER_ATTEMPTS`
times; then it parks the event in `dead_letters` (see `journeyman.event_store.deadletters`),
counts it in the `journeyman_dead_letters_parked` metric, logs it once, and goes on with
the rest. A row that cannot be decoded is parked at once: reading it again gives the same
result. An outage (the database or Temporal unreachable) is not the event's fault: it never
counts as an attempt, the subscriber simply retries from its checkpoint.

After a fix, an operator hands a parked event back to its consumer or gives it up
(`journeyman.engine.deadletters.actions`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg
from journeyman.event_store import RecordedEvent, UndecodableEvent
from journeyman.event_store.deadletters import park as park  # subscribers park through this module

if TYPE_CHECKING:
    from journeyman.event_store import PostgresEventStore

log = logging.getLogger(__name__)

# Temporal answers that say the server is unavailable or overloaded, not that the request is
# wrong (INVALID_ARGUMENT, FAILED_PRECONDITION, … are the event's).
_TRANSIENT_RPC = {
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "ABORTED",
    "CANCELLED",
    "INTERNAL",
    "UNKNOWN",
}


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the infrastructure failed (retry later) rather than the event."""
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.TransactionRollbackError
        | asyncpg.OperatorInterventionError
        | asyncpg.InsufficientResourcesError
        | ConnectionError
        | TimeoutError
        | socket.gaierror,
    ):
        return True
    status = getattr(exc, "status", None)
    if status is not None and getattr(status, "name", None) in _TRANSIENT_RPC:
        return True  # a Temporal RPC error
    return False


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


class Attempts:
    """Failed attempts per event position, kept by one subscriber in memory (a restart
    starts counting again: at worst an event is tried a few more times)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._failures: dict[int, tuple[int, dt.datetime]] = {}

    def fail(self, position: int) -> tuple[int, dt.datetime]:
        """Count one failure; returns (failures so far, time of the first)."""
        n, first = self._failures.get(position, (0, dt.datetime.now(dt.UTC)))
        self._failures[position] = (n + 1, first)
        return n + 1, first

    def exhausted(self, position: int) -> bool:
        return self._failures.get(position, (0, None))[0] >= self.limit

    def clear(self, position: int) -> None:
        self._failures.pop(position, None)

    @staticmethod
    async def pause(attempt: int) -> None:
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))


ANALYZE_AFTER = 25_000
"""Events a catch-up applies before it first refreshes its tables' planner statistics; then
again each time it has applied four times as many."""


class NarrowingReader:
    """A subscriber that applies batches, and a failing batch one event at a time.

    A batch whose processing fails (other than by an outage, see `is_transient`) is applied
    again one event per transaction, up to its end; an event that still fails
    `attempts.limit` times is parked by `_park_next` and the reader goes on. Subclasses set
    `batch_size`, `attempts`, `label` (for the log) and implement `_run(limit)` (one
    transaction; it sets `_reading_upto` to the end of what it read before applying it) and
    `_park_next(error, first_failed_at)`."""

    label = "reader"
    store: PostgresEventStore
    batch_size: int
    attempts: Attempts
    tables: tuple[str, ...] = ()
    """The tables the reader writes (their statistics are refreshed during a catch-up)."""
    analyze_after: int = ANALYZE_AFTER
    _reading_upto: Any = None
    _narrow_until: Any = None

    async def _run(self, limit: int) -> int:
        raise NotImplementedError

    async def _park_next(self, error: str, first_failed_at: dt.datetime | None) -> int:
        raise NotImplementedError

    async def run_until_caught_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply every event not yet applied. A long catch-up (a rebuild, an upgrade)
        refreshes the planner statistics of `tables` as they grow: plans chosen for the
        near-empty tables of its start, before autovacuum gets to them, would read whole
        tables per batch (a 100,000-member analytics catch-up ran at a third of its speed)."""
        total, next_analyze = 0, self.analyze_after
        while n := await self.run_once():
            total += n
            if progress:
                progress(n)
            if self.tables and total >= next_analyze:
                async with self.store.pool.acquire() as conn:
                    await conn.execute(f"ANALYZE {', '.join(self.tables)}")
                next_analyze = 4 * total
        return total

    async def run_forever(self, idle_poll: float = 0.1) -> None:
        """Apply events as they are appended."""
        while True:
            if not await self.run_once():
                await self.store.wait_for_append(idle_poll)

    async def run_once(self) -> int:
        """Apply the next batch, if any; returns how many events it held (parked ones too)."""
        if self._narrow_until is not None:
            return await self._run_narrowed()
        try:
            return await self._run(self.batch_size)
        except Exception as exc:
            if is_transient(exc) or self._reading_upto is None:
                raise
            log.warning(
                "%s: a batch failed (%s); applying it one event at a time",
                self.label,
                describe(exc),
            )
            self._narrow_until = self._reading_upto
            return await self._run_narrowed()

    async def _run_narrowed(self) -> int:
        """One event in its own transaction, tried up to the attempt limit, then parked."""
        upto = self._narrow_until
        error = ""
        first: dt.datetime | None = None
        for attempt in range(self.attempts.limit):
            if attempt:
                await self.attempts.pause(attempt)
            try:
                n = await self._run(1)
            except Exception as exc:
                if is_transient(exc):
                    raise
                error = describe(exc)
                first = first or dt.datetime.now(dt.UTC)
                continue
            if n == 0 or (
                self._reading_upto is not None and upto is not None and self._reading_upto >= upto
            ):
                self._narrow_until = None
            return n
        return await self._park_next(error, first)


def announce(consumer: str, event: RecordedEvent | UndecodableEvent, error: str) -> None:
    """Log a parked event (once: it is parked once) and count it."""
    from journeyman.engine.core.metrics import record_dead_letter

    reason = "undecodable" if isinstance(event, UndecodableEvent) else "failed"
    record_dead_letter(consumer, reason)
    log.error(
        "%s parked event %s (position %d, %s, %s) as a dead letter and went on: %s; "
        "see `journeyman deadletters list`",
        consumer,
        event.event_id,
        event.global_position,
        event.stream_id,
        event.type,
        error,
    )
