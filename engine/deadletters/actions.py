"""Dead letters, the operator's side: look at a parked event, hand it back to its consumer
once the cause is fixed (`retry`), or give it up (`drop`). Both are on the CLI
(`journeyman deadletters …`) and the admin API. Parking is the readers' side
(`journeyman.engine.core.parking`)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from journeyman.engine.core.parking import describe
from journeyman.event_store import RecordedEvent, UndecodableEvent
from journeyman.event_store import deadletters as store_dl
from journeyman.event_store.deadletters import DeadLetter

if TYPE_CHECKING:
    from journeyman.engine.core.settings import Settings
    from journeyman.event_store import PostgresEventStore
    from temporalio.client import Client

log = logging.getLogger("journeyman.engine.core.parking")


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
    from journeyman.engine.profiles import NAME as PROFILES
    from journeyman.engine.profiles import ProfileProjector
    from journeyman.engine.routing.dispatcher import SUBSCRIPTION

    if dl.consumer == PROFILES:
        await ProfileProjector(store, settings).reprocess(event)
        return
    from journeyman.engine.analytics.projector import NAME as JOURNEY_STATS
    from journeyman.engine.analytics.projector import JourneyStatsProjector

    if dl.consumer == JOURNEY_STATS:
        await JourneyStatsProjector(store, settings).reprocess(event)
        return
    if dl.consumer == SUBSCRIPTION:
        if temporal is None:
            raise RuntimeError("retrying a dispatcher dead letter needs Temporal")
        from journeyman.engine.routing.dispatcher import Dispatcher
        from journeyman.engine.runtime.worker import registered_journeys

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
