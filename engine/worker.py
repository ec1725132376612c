"""The Temporal worker: every journey the plugin manager finds, the inactivity scan, and the
journey activities, on one task queue.

    journeyman worker            # uses JOURNEYMAN_TEMPORAL_ADDRESS / JOURNEYMAN_DATABASE_URL
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.activities.journey_activities import JourneyActivities
from engine.settings import Settings
from engine.temporal_client import data_converter
from event_store import PostgresEventStore

log = logging.getLogger(__name__)


def registered_journeys() -> dict[str, type]:
    """Journey classes by name, from built-in and third-party plugins alike."""
    from plugins import get_plugin_manager

    return get_plugin_manager(strict=False).journeys()


async def connect_temporal(settings: Settings) -> Client:
    """A client for the configured Temporal, with the pydantic data converter and payload
    encryption (`engine.temporal_client`)."""
    if not settings.temporal_address:
        raise RuntimeError(
            "JOURNEYMAN_TEMPORAL_ADDRESS is not set: point it at a Temporal frontend "
            "(host:port), or run everything with `journeyman up`"
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with pydantic and the journey modules passed through: they hold no
    mutable module state, and re-importing them for every workflow run costs more than the
    journey itself."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "pydantic", "pydantic_core", "annotated_types", "workflows", "engine"
        )
    )


def build_worker(
    client: Client,
    store: PostgresEventStore,
    *,
    task_queue: str = "journeyman",
    journeys: Mapping[str, type] | None = None,
    journey_settings: Mapping[str, Mapping[str, Any]] | None = None,
    activity_types: list[str] | None = None,
    activities: JourneyActivities | None = None,
    extra_activities: Sequence[Callable[..., Any]] = (),
    **worker_options: Any,
) -> Worker:
    from workflows.scan import InactivityScan

    found = dict(journeys if journeys is not None else registered_journeys())
    acts = activities or JourneyActivities(
        store,
        client=client,
        journeys=found,
        task_queue=task_queue,
        journey_settings=journey_settings,
        activity_types=activity_types,
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*found.values(), InactivityScan],
        activities=[*acts.all(), *extra_activities],
        **{"workflow_runner": workflow_runner(), **worker_options},
    )


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, store: PostgresEventStore, **kwargs: Any
) -> AsyncIterator[Worker]:
    worker = build_worker(client, store, **kwargs)
    async with worker:
        yield worker


async def run_worker(settings: Settings, database_url: str) -> None:
    store = await PostgresEventStore.connect(
        database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        client = await connect_temporal(settings)
        journeys = registered_journeys()
        log.info("worker on %s with journeys %s", settings.task_queue, ", ".join(journeys))
        # Delivery: `deliver` on the main queue applies the policies and routes each send to
        # its channel's queue, where one worker per channel enforces the rate limit.
        from engine.delivery.workers import build_deliverer, channel_workers
        from engine.privacy.consent import ConsentActivities

        deliverer = build_deliverer(store, settings)
        worker = build_worker(
            client,
            store,
            task_queue=settings.task_queue,
            journeys=journeys,
            activities=JourneyActivities(
                store,
                client=client,
                journeys=journeys,
                task_queue=settings.task_queue,
                journey_settings=settings.journeys,
                activity_types=settings.activity_types,
                deliver_impl=deliverer.deliver,
            ),
            extra_activities=ConsentActivities(settings).all(),
        )
        senders = channel_workers(client, deliverer) if deliverer.channel_queues else []
        await asyncio.gather(worker.run(), *(w.run() for w in senders))
    finally:
        await store.close()
