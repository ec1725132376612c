"""Dead letters, the engine's side: no reader of the store halts on one event.

A subscriber (the profile projection, the journey analytics projection, each dispatcher
partition) tries an event whose processing fails up to `JOURNEYMAN_DEAD_LETTER_ATTEMPTS`
times; then it parks the event in `dead_letters` (see `journeyman.event_store.deadletters`), counts
it
in the `journeyman_dead_letters_parked` metric, logs it once, and goes on with the rest. A row that
cannot be decoded is parked at once: reading it again gives the same result. An outage (the
database or Temporal unreachable) is not the event's fault: it never counts as an attempt,
the subscriber simply retries from its checkpoint.

After a fix, `retry` hands a parked event back to its consumer; `drop` gives it up. Both
are on the CLI (`journeyman deadletters …`) and the admin API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from journeyman.event_store import RecordedEvent, UndecodableEvent
from journeyman.event_store import deadletters as store_dl
from journeyman.event_store.deadletters import DeadLetter
from journeyman.event_store.deadletters import park as park  # subscribers park through this module

if TYPE_CHECKING:
    from journeyman.engine.settings import Settings
    from journeyman.event_store import PostgresEventStore
    from temporalio.client import Client

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


class NarrowingReader:
    """A subscriber that applies batches, and a failing batch one event at a time.

    A batch whose processing fails (other than by an outage, see `is_transient`) is applied
    again one event per transaction, up to its end; an event that still fails
    `attempts.limit` times is parked by `_park_next` and the reader goes on. Subclasses set
    `batch_size`, `attempts`, `label` (for the log) and implement `_run(limit)` (one
    transaction; it sets `_reading_upto` to the end of what it read before applying it) and
    `_park_next(error, first_failed_at)`."""

    label = "reader"
    batch_size: int
    attempts: Attempts
    _reading_upto: Any = None
    _narrow_until: Any = None

    async def _run(self, limit: int) -> int:
        raise NotImplementedError

    async def _park_next(self, error: str, first_failed_at: dt.datetime | None) -> int:
        raise NotImplementedError

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
    from journeyman.engine.metrics import record_dead_letter

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


# ------------------------------------------------------------------ operator actions
@dataclass
class RetryOutcome:
    dead_letter: DeadLetter
    ok: bool
    message: str


class UnknownDeadLetter(LookupError):
    pass


class AlreadyRetried(RuntimeError):
    """The dead letter's event was handled by a retry already: a second one would apply it
    twice (an order counted twice in a profile)."""


async def retry(
    store: PostgresEventStore,
    settings: Settings,
    id: int,
    *,
    temporal: Client | None = None,
    journeys: dict[str, type] | None = None,
) -> RetryOutcome:
    """Hand the parked event `id` back to its consumer. On success the dead letter becomes
    `retried`; on failure it stays parked with the new error."""
    dl = await store_dl.get_dead_letter(store.pool, id)
    if dl is None:
        raise UnknownDeadLetter(f"no dead letter {id}")
    if dl.status == "retried":
        raise AlreadyRetried(
            f"dead letter {id} was processed by {dl.consumer} at {dl.resolved_at:%Y-%m-%d %H:%M:%S}"
            "; it is not retried twice"
        )
    event = await store.read_event(dl.global_position)
    try:
        if event is None:
            raise LookupError(f"no event at position {dl.global_position}")
        if isinstance(event, UndecodableEvent):
            raise ValueError(f"the event still cannot be decoded: {event.error}")
        await _reprocess(store, settings, dl, event, temporal=temporal, journeys=journeys)
    except Exception as exc:
        error = describe(exc)
        updated = await store_dl.record_failure(store.pool, id, error)
        return RetryOutcome(updated or dl, False, error)
    done = await store_dl.resolve(store.pool, id, "retried", f"processed by {dl.consumer}")
    log.info("dead letter %d (%s) processed by %s", id, dl.event_id, dl.consumer)
    return RetryOutcome(done or dl, True, f"processed by {dl.consumer}")


async def drop(store: PostgresEventStore, id: int, reason: str = "") -> DeadLetter:
    """Give up a parked event: it stays in the store and in `dead_letters`, as dropped."""
    dl = await store_dl.resolve(store.pool, id, "dropped", reason or "dropped by an operator")
    if dl is None:
        raise UnknownDeadLetter(f"no dead letter {id}")
    return dl


async def _reprocess(
    store: PostgresEventStore,
    settings: Settings,
    dl: DeadLetter,
    event: RecordedEvent,
    *,
    temporal: Client | None,
    journeys: dict[str, type] | None,
) -> None:
    from journeyman.engine.dispatcher import SUBSCRIPTION
    from journeyman.engine.profiles import NAME as PROFILES
    from journeyman.engine.profiles import ProfileProjector

    if dl.consumer == PROFILES:
        await ProfileProjector(store, settings).reprocess(event)
        return
    from journeyman.engine.analytics_projector import NAME as JOURNEY_STATS
    from journeyman.engine.analytics_projector import JourneyStatsProjector

    if dl.consumer == JOURNEY_STATS:
        await JourneyStatsProjector(store, settings).reprocess(event)
        return
    if dl.consumer == SUBSCRIPTION:
        if temporal is None:
            raise RuntimeError("retrying a dispatcher dead letter needs Temporal")
        from journeyman.engine.dispatcher import Dispatcher
        from journeyman.engine.worker import registered_journeys

        dispatcher = Dispatcher(
            store,
            temporal,
            journeys if journeys is not None else registered_journeys(),
            task_queue=settings.task_queue,
            journey_settings=settings.journeys,
            activity_types=settings.activity_types,
            partition=dl.partition,
            partitions=dl.partitions,
        )
        await dispatcher.reprocess(event)
        return
    raise LookupError(f"no consumer named {dl.consumer!r} can retry events")


def as_dict(dl: DeadLetter) -> dict[str, Any]:
    """A dead letter as plain JSON values."""
    out: dict[str, Any] = {}
    for name in DeadLetter.__slots__:
        value = getattr(dl, name)
        out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


async def show(store: PostgresEventStore, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter with the event it parks (its raw columns when it cannot be decoded);
    None when there is no such dead letter."""
    dl = await store_dl.get_dead_letter(store.pool, dead_letter_id)
    if dl is None:
        return None
    out = as_dict(dl)
    event = await store.read_event(dl.global_position)
    if isinstance(event, UndecodableEvent):
        out["event"] = {"undecodable": event.error, "raw": event.raw}
    elif event is not None:
        out["event"] = {
            "occurred_at": event.occurred_at.isoformat(),
            "recorded_at": event.recorded_at.isoformat(),
            "data": event.data,
            "metadata": event.metadata,
        }
    return out
