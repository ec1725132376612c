"""Shared helpers of the journey tests: a worker on the test's database, events, members."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput, JourneyResult
from journeyman.event_store import PostgresEventStore
from journeyman.workflows.cart_recovery import CartRecovery
from journeyman.workflows.post_purchase import PostPurchaseSurvey
from journeyman.workflows.scan import InactivityScan
from journeyman.workflows.testing import member_for
from journeyman.workflows.welcome import Welcome
from journeyman.workflows.winback import Winback
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

JOURNEYS = [CartRecovery, Winback, Welcome, PostPurchaseSurvey]
_positions = itertools.count(1_000_000)


@contextlib.asynccontextmanager
async def journey_worker(
    client: Client, store: PostgresEventStore, **kwargs: Any
) -> AsyncIterator[str]:
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    acts = JourneyActivities(store, client=client, task_queue=task_queue, **kwargs)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[*JOURNEYS, InactivityScan],
        activities=acts.all(),
    ):
        yield task_queue


def event(
    type: str, data: dict[str, Any] | None = None, *, position: int | None = None
) -> JourneyEvent:
    pos = next(_positions) if position is None else position
    return JourneyEvent(position=pos, type=type, data=data or {}, event_id=f"ev-{pos}")


def member_with(journey: type, *, holdout: bool, variant: str | None = None) -> str:
    """A member id that the journey assigns to (or keeps out of) its holdout group."""
    return member_for(journey, holdout=holdout, variant=variant)


async def start(
    client: Client,
    task_queue: str,
    journey: type,
    member_id: str,
    *,
    trigger: JourneyEvent | None = None,
    settings: dict[str, Any] | None = None,
) -> WorkflowHandle:
    spec = journey.__journey__
    key = spec.key_of(trigger.data) if trigger is not None else None
    resolved = spec.resolve_settings(settings).model_dump(mode="json")
    kwargs: dict[str, Any] = {}
    if trigger is not None:
        kwargs = {"start_signal": EVENT_SIGNAL, "start_signal_args": [trigger]}
    return await client.start_workflow(
        spec.name,
        JourneyInput(member_id=member_id, key=key, trigger=trigger, settings=resolved),
        id=spec.workflow_id(member_id, key),
        task_queue=task_queue,
        id_reuse_policy=spec.id_reuse_policy(),
        result_type=JourneyResult,
        **kwargs,
    )


async def member_events(store: PostgresEventStore, member_id: str) -> list[Any]:
    return await store.read_stream(f"member-{member_id}")


async def types_of(store: PostgresEventStore, member_id: str) -> list[str]:
    return [e.type for e in await member_events(store, member_id)]


def hours_(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)
