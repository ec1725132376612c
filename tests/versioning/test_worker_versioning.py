"""Worker versioning on the dev server: runs of a PINNED journey finish on the build they
started on while new runs start on the current build, promoted with the real command. Sends
are routed to a channel queue served by an unversioned worker, as `journeyman worker` does."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import (
    JourneyInput,
    JourneyResult,
    SendOutcome,
    SendRequest,
    delivery_id,
)
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.worker import build_worker, deployment_version, set_current_build
from journeyman.event_store import PostgresEventStore
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker
from versioned_v1 import NAME, HelloV1
from versioned_v2 import HelloV2

JOURNEYMAN = Path(sys.executable).parent / "journeyman"


def test_build_id_makes_a_versioned_worker() -> None:
    assert deployment_version(Settings(_env_file=None)) is None
    assert deployment_version(
        Settings(_env_file=None, task_queue="shop", worker_build_id="2024-06-01.3")
    ) == WorkerDeploymentVersion("shop", "2024-06-01.3")
    assert deployment_version(
        Settings(_env_file=None, worker_deployment="journeys", worker_build_id="b7")
    ) == WorkerDeploymentVersion("journeys", "b7")
    with pytest.raises(ValueError, match="worker_deployment"):
        Settings(_env_file=None, worker_deployment="has.dot")
    with pytest.raises(ValueError, match="JOURNEYMAN_WORKER_DEPLOYMENT"):
        deployment_version(Settings(_env_file=None, task_queue="shop.eu", worker_build_id="b7"))


async def _start(client: Client, task_queue: str, member: str, pause: float) -> WorkflowHandle:
    spec = HelloV1.__journey__
    settings = spec.resolve_settings({"pause": pause}).model_dump(mode="json")
    return await client.start_workflow(
        NAME,
        JourneyInput(member_id=member, settings=settings),
        id=spec.workflow_id(member, None),
        task_queue=task_queue,
        result_type=JourneyResult,
    )


async def _builds(handle: WorkflowHandle) -> set[tuple[str, int]]:
    """(build id, versioning behaviour) of every completed workflow task of the run."""
    seen = set()
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            a = e.workflow_task_completed_event_attributes
            seen.add((a.deployment_version.build_id, a.versioning_behavior))
    return seen


async def _deliver_queues(handle: WorkflowHandle) -> list[str]:
    """The task queues the run's `deliver` activities were scheduled on, in order."""
    queues = []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = e.activity_task_scheduled_event_attributes
            if a.activity_type.name == "deliver":
                queues.append(a.task_queue.name)
    return queues


def _route_to(queue: str):  # type: ignore[no-untyped-def]
    """The main queue's `deliver` with channel queues on: hand every send to `queue`."""

    async def deliver(request: SendRequest) -> SendOutcome:
        return SendOutcome(status="routed", delivery_id=delivery_id(request), task_queue=queue)

    return deliver


async def _sent(store: PostgresEventStore, member: str) -> list[str]:
    events = await store.read_stream(f"member-{member}")
    return [e.data["template"] for e in events if e.type == "message.sent"]


async def _journeyman(*args: str, env: dict[str, str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(JOURNEYMAN),
        *args,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.devserver
async def test_pinned_runs_finish_on_their_build(temporal_dev, store, tmp_path) -> None:
    client: Client = temporal_dev.client
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    channel_queue = f"{task_queue}-channel"
    deployment = f"jm-{uuid.uuid4().hex[:8]}"
    env = {
        "JOURNEYMAN_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "JOURNEYMAN_TASK_QUEUE": task_queue,
        "JOURNEYMAN_WORKER_DEPLOYMENT": deployment,
        "JOURNEYMAN_DATA_DIR": str(tmp_path / "data"),
    }
    first_member, second_member = f"m1-{deployment}", f"m2-{deployment}"

    def worker(cls: type, build: str):  # type: ignore[no-untyped-def]
        return build_worker(
            client,
            store,
            task_queue=task_queue,
            journeys={NAME: cls},
            activities=JourneyActivities(
                store, client=client, task_queue=task_queue, deliver_impl=_route_to(channel_queue)
            ),
            version=WorkerDeploymentVersion(deployment, build),
        )

    # the channel's worker: unversioned, the outbox behind it
    sender = Worker(client, task_queue=channel_queue, activities=[JourneyActivities(store).deliver])
    async with sender, worker(HelloV1, "v1"):
        assert await set_current_build(client, deployment, "v1") is None
        first = await _start(client, task_queue, first_member, pause=8)
        for _ in range(100):  # until the first run has said hello and is pausing
            if await _sent(store, first_member):
                break
            await asyncio.sleep(0.1)
        assert await _sent(store, first_member) == ["hello"]

        async with worker(HelloV2, "v2"):
            out = await _journeyman("deployment", "set-current", "v2", env=env, cwd=tmp_path)
            assert "build v2 current (was v1)" in out
            # v2 is current while the first run is still pausing on v1
            assert await _sent(store, first_member) == ["hello"]
            second = await _start(client, task_queue, second_member, pause=0.5)
            second_result = await asyncio.wait_for(second.result(), 20)
            first_result = await asyncio.wait_for(first.result(), 20)
            shown = await _journeyman("deployment", "show", env=env, cwd=tmp_path)

    assert [s.template for s in first_result.sends] == ["hello", "goodbye"]
    assert await _sent(store, first_member) == ["hello", "goodbye"]
    assert await _builds(first) == {("v1", VersioningBehavior.VERSIONING_BEHAVIOR_PINNED)}
    assert await _deliver_queues(first) == [task_queue, channel_queue] * 2

    assert [s.template for s in second_result.sends] == ["teaser", "hello", "goodbye"]
    assert await _sent(store, second_member) == ["teaser", "hello", "goodbye"]
    assert await _builds(second) == {("v2", VersioningBehavior.VERSIONING_BEHAVIOR_PINNED)}
    assert await _deliver_queues(second) == [task_queue, channel_queue] * 3

    assert f"{deployment} build v2: current" in shown
    assert f"{deployment} build v1: draining" in shown  # drained once the server rechecks


@pytest.mark.devserver
async def test_set_current_needs_a_polling_worker_of_the_build(temporal_dev) -> None:
    with pytest.raises(RuntimeError, match="no worker of build 'v9' of deployment 'jm-none'"):
        await set_current_build(temporal_dev.client, "jm-none", "v9", wait=0.5)
