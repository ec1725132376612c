"""Temporal wiring of delivery: the `deliver` activity and one worker per channel task queue.

The main worker registers `deliver` on the journeys' task queue, where it applies the
policies and picks the channel. Each configured channel gets a worker on its own task queue
(`channels.task_queue_for(name)`) with `max_task_queue_activities_per_second` set to the
channel's rate limit: Temporal enforces that limit across every worker polling the queue, so
ten worker processes together still send at most `rate_limit_per_second` through a channel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from journeyman.channels import Channel
from journeyman.engine.activities.heartbeat import with_heartbeats
from journeyman.engine.contracts.delivery import DELIVER, SendOutcome, SendRequest
from journeyman.engine.core.settings import Settings
from journeyman.event_store import PostgresEventStore
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from .service import Deliverer


def deliver_activity(deliverer: Deliverer) -> Callable[..., Any]:
    """The `deliver` activity bound to `deliverer` (for the main and the channel queues)."""

    @activity.defn(name=DELIVER)
    async def deliver(request: SendRequest) -> SendOutcome:
        return await with_heartbeats(deliverer.deliver(request))

    return deliver


def load_channels(settings: Settings, *, strict: bool = True) -> dict[str, Channel]:
    """Every registered channel, configured from settings (plugins included)."""
    from journeyman.plugins import get_plugin_manager

    return get_plugin_manager(strict=strict).channels(channel_settings(settings))


def channel_settings(settings: Settings) -> dict[str, dict[str, Any]]:
    """The `channels` settings, with the outbox under the data directory unless its
    directory is set (`JOURNEYMAN_CHANNELS__OUTBOX__DIRECTORY`): every process of one
    installation then writes to, and reads from, the same place whatever its working
    directory."""
    found = {name: dict(entry) for name, entry in settings.channels.items()}
    outbox = found.setdefault("outbox", {})
    if not outbox.get("directory"):
        outbox["directory"] = str(settings.data_dir.resolve() / "outbox")
    return found


def build_deliverer(
    store: PostgresEventStore,
    settings: Settings,
    channels: Mapping[str, Channel] | None = None,
    *,
    channel_queues: bool | None = None,
) -> Deliverer:
    from journeyman.plugins import get_plugin_manager

    from .templates import templates_for

    found = dict(channels if channels is not None else load_channels(settings))
    queues = settings.delivery.channel_queues if channel_queues is None else channel_queues
    shipped = get_plugin_manager(strict=False).templates()
    return Deliverer(
        store,
        found,
        settings=settings,
        channel_queues=queues,
        templates=templates_for(settings, shipped),
    )


def channel_workers(client: Client, deliverer: Deliverer, **worker_options: Any) -> list[Worker]:
    """One worker per configured channel (and the outbox when it stands in for others),
    each capped at the channel's rate limit."""
    act = deliver_activity(deliverer)
    workers = []
    for channel in deliverer.channels.values():
        if not channel.configured:
            continue
        workers.append(
            Worker(
                client,
                task_queue=channel.task_queue,
                activities=[act],
                max_task_queue_activities_per_second=channel.rate_limit_per_second,
                **worker_options,
            )
        )
    return workers
