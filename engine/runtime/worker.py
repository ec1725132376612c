"""The Temporal worker: every journey the plugin manager finds, the inactivity scan, and the
journey activities, on one task queue.

    journeyman worker            # uses JOURNEYMAN_TEMPORAL_ADDRESS / JOURNEYMAN_DATABASE_URL

With `JOURNEYMAN_WORKER_BUILD_ID` set, the worker is one build of a Temporal worker deployment
(worker versioning): `set_current_build` (`journeyman deployment set-current <build-id>`) makes
a build the one new runs start on, and runs of PINNED journeys stay on the build they started
on while it keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata as md
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.temporal_client import data_converter
from journeyman.event_store import PostgresEventStore
from journeyman.plugins import ENTRY_POINT_GROUP
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import RoutingConfigUpdateState, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

log = logging.getLogger(__name__)


def plugin_manager() -> Any:
    """The plugins of this installation (built-in and third-party alike)."""
    from journeyman.plugins import get_plugin_manager

    return get_plugin_manager(strict=False)


def registered_journeys() -> dict[str, type]:
    """Journey classes by name, from built-in and third-party plugins alike."""
    return plugin_manager().journeys()


def checked_journeys(settings: Settings) -> dict[str, type]:
    """The registered journeys, after checking the names they use (`engine.journey_checks`);
    raises `JourneyCheckError` listing every problem."""
    from journeyman.engine.runtime.journey_checks import JourneyCheckError, check_registered

    pm = plugin_manager()
    journeys = pm.journeys()
    problems = check_registered(pm, settings, journeys)
    if problems:
        raise JourneyCheckError(problems)
    return journeys


async def connect_temporal(settings: Settings) -> Client:
    """A client for the configured Temporal, with the pydantic data converter and payload
    encryption (`journeyman.engine.runtime.temporal_client`)."""
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


# What a journey may use from Journeyman, passed through the sandbox: the authoring kit and
# the wire types it exchanges with the engine. They hold no mutable module state, and
# re-importing them for every workflow run would cost more than the journey itself. The rest
# of the engine (database, delivery, API) is not passed through: a journey module importing
# it gets a fresh, sandboxed copy, where anything non-deterministic it does is refused.
JOURNEY_MODULES = (
    "journeyman.workflows",
    "journeyman.engine.contracts",
    "journeyman.engine.segments",
    # Process-wide state, never to be loaded twice: the Prometheus metrics registered once.
    "journeyman.engine.core.metrics",
)


@functools.cache
def library_modules() -> frozenset[str]:
    """Top-level modules of the installed libraries, Journeyman and journey packages aside.

    They are passed through the sandbox as they are: a sandboxed copy of a library with a
    native extension (asyncpg, SQLAlchemy, cryptography) shares the extension's state with
    the worker's own copy and can crash the process when either is torn down. Journeyman and
    the packages that register plugins (where journeys live) are not libraries here: they
    are sandboxed, but for `JOURNEY_MODULES`."""
    plugin_dists = {
        ep.dist.name for ep in md.entry_points(group=ENTRY_POINT_GROUP) if ep.dist is not None
    }
    return frozenset(
        module
        for module, dists in md.packages_distributions().items()
        if module.isidentifier() and module != "journeyman" and not plugin_dists.intersection(dists)
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with the libraries and `JOURNEY_MODULES` passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *library_modules(), *JOURNEY_MODULES
        )
    )


def deployment_version(settings: Settings) -> WorkerDeploymentVersion | None:
    """The worker deployment version this worker runs as, or None for an unversioned worker."""
    if not settings.worker_build_id:
        return None
    return WorkerDeploymentVersion(
        deployment_name=deployment_name(settings), build_id=settings.worker_build_id
    )


def deployment_name(settings: Settings) -> str:
    """The worker deployment's name: the setting, else the task queue's name."""
    name = settings.worker_deployment or settings.task_queue
    if "." in name:
        raise ValueError(
            f"worker deployment name {name!r} contains '.': set JOURNEYMAN_WORKER_DEPLOYMENT "
            "to a name without one"
        )
    return name


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
    version: WorkerDeploymentVersion | None = None,
    **worker_options: Any,
) -> Worker:
    """The journeys' worker. With `version`, it is that build of a worker deployment: journeys
    declared `versioning_behavior=PINNED` stay on the build they started on, everything else
    (journeys that say nothing, the inactivity scan) moves to the current build on its next
    workflow task."""
    from journeyman.workflows.scan import InactivityScan

    if version is not None:
        worker_options["deployment_config"] = WorkerDeploymentConfig(
            version=version,
            use_worker_versioning=True,
            default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
        )

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
    # Before anything connects: a journey naming what does not exist must not start.
    journeys = checked_journeys(settings)
    store = await PostgresEventStore.connect(
        database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    try:
        client = await connect_temporal(settings)
        version = deployment_version(settings)
        log.info(
            "worker on %s%s with journeys %s",
            settings.task_queue,
            f" as build {version.build_id} of deployment {version.deployment_name}"
            if version
            else "",
            ", ".join(journeys),
        )
        # Delivery: `deliver` on the main queue applies the policies and routes each send to
        # its channel's queue, where one worker per channel enforces the rate limit.
        from journeyman.engine.delivery.workers import build_deliverer, channel_workers
        from journeyman.engine.privacy.consent import ConsentActivities

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
            version=version,
        )
        # Channel workers stay unversioned: they run only `deliver`, whose contract does not
        # change with journey code, so any build's sender may serve any run.
        senders = channel_workers(client, deliverer) if deliverer.channel_queues else []
        await asyncio.gather(worker.run(), *(w.run() for w in senders))
    finally:
        await store.close()


# ---------------------------------------------------------------------- worker deployments
async def describe_deployment(
    client: Client, deployment: str
) -> tuple[WorkerDeploymentInfo, bytes] | None:
    """The deployment as Temporal sees it and its conflict token; None before any build of it
    has polled."""
    try:
        resp = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment)
        )
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return resp.worker_deployment_info, resp.conflict_token


def build_statuses(info: WorkerDeploymentInfo) -> dict[str, str]:
    """Each build's status by build id: `current`, `ramping`, `draining` (runs pinned to it
    are still open), `drained` (safe to stop its workers), `inactive`."""
    prefix = "WORKER_DEPLOYMENT_VERSION_STATUS_"
    return {
        v.deployment_version.build_id: WorkerDeploymentVersionStatus.Name(v.status)
        .removeprefix(prefix)
        .lower()
        for v in info.version_summaries
    }


async def set_current_build(
    client: Client, deployment: str, build_id: str, *, wait: float = 30.0
) -> str | None:
    """Make `build_id` the current build of `deployment` and return the build that was
    current before (None if none was).

    From then on new runs start on that build; runs of AUTO_UPGRADE workflows move to it on
    their next workflow task; runs of PINNED journeys stay on the build they started on.
    Waits up to `wait` seconds for a worker of the build to be seen polling and for the change
    to reach the deployment's task queues.
    """
    deadline = time.monotonic() + wait
    while True:
        found = await describe_deployment(client, deployment)
        if found is not None and build_id in build_statuses(found[0]):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no worker of build {build_id!r} of deployment {deployment!r} has polled "
                f"{client.namespace!r} in {wait:g} s: start one with "
                f"JOURNEYMAN_WORKER_BUILD_ID={build_id} `journeyman worker`, then try again"
            )
        await asyncio.sleep(0.2)
    info, token = found
    previous = info.routing_config.current_deployment_version.build_id or None
    if previous != build_id:
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace,
                deployment_name=deployment,
                build_id=build_id,
                conflict_token=token,
                identity=client.identity,
            )
        )
    in_progress = RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
    while time.monotonic() < deadline:
        found = await describe_deployment(client, deployment)
        if found is None or found[0].routing_config_update_state != in_progress:
            break
        await asyncio.sleep(0.2)
    return previous
