"""A journey that reads the wall clock in its steps fails at once, with a message naming
`self.now()`, instead of failing its workflow task forever behind the sandbox's advice."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
from journey_testkit import event, start
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.runtime.worker import workflow_runner
from journeyman.workflows import Journey, hours, journey, on_event
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker


@journey("clock_reader", trigger=on_event("product.viewed"))
class ClockReader(Journey):
    async def steps(self) -> None:
        if dt.datetime.now().hour < 25:  # the mistake: not self.now()
            await self.sleep(hours(1))


@journey("seeded_coin", trigger=on_event("product.viewed"))
class SeededCoin(Journey):
    async def steps(self) -> None:
        await self.sleep(hours(1) * (1 + self.random().randint(0, 1)))


async def _result(temporal_env, store, cls: type) -> object:  # type: ignore[no-untyped-def]
    client = temporal_env.client
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    acts = JourneyActivities(store, client=client, task_queue=tq)
    async with Worker(
        client,
        task_queue=tq,
        workflows=[cls],
        activities=acts.all(),
        workflow_runner=workflow_runner(),
    ):
        handle = await start(
            client, tq, cls, f"m-{uuid.uuid4().hex[:6]}", trigger=event("product.viewed")
        )
        return await asyncio.wait_for(handle.result(), 5)


async def test_datetime_now_in_steps_fails_fast_naming_self_now(temporal_env, store) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    with pytest.raises(WorkflowFailureError) as caught:
        await _result(temporal_env, store, ClockReader)
    assert time.monotonic() - started < 5
    message = str(caught.value.cause)
    assert "journey 'clock_reader' called datetime.datetime.now" in message
    assert "use self.now()" in message


async def test_self_random_is_allowed(temporal_env, store) -> None:  # type: ignore[no-untyped-def]
    result = await _result(temporal_env, store, SeededCoin)
    assert result.status == "completed"  # type: ignore[attr-defined]


@workflow.defn(name="sandbox_probe")
class SandboxProbe:
    """Reports whether modules inside the sandbox are the worker's own objects."""

    @workflow.run
    async def run(self, outside: list[int]) -> list[bool]:
        import journeyman.engine.contracts as kit_types
        import journeyman.engine.ingest.storable as engine_internal
        import journeyman.workflows.spec as spec

        return [
            id(m) == i for m, i in zip((kit_types, spec, engine_internal), outside, strict=True)
        ]


async def test_only_the_journey_modules_pass_through_the_sandbox(temporal_env) -> None:  # type: ignore[no-untyped-def]
    import journeyman.engine.contracts as kit_types
    import journeyman.engine.ingest.storable as engine_internal
    import journeyman.workflows.spec as spec

    tq = f"tq-{uuid.uuid4().hex[:8]}"
    outside = [id(kit_types), id(spec), id(engine_internal)]
    async with Worker(
        temporal_env.client,
        task_queue=tq,
        workflows=[SandboxProbe],
        workflow_runner=workflow_runner(),
    ):
        same = await temporal_env.client.execute_workflow(
            SandboxProbe.run, outside, id=f"probe-{tq}", task_queue=tq
        )
    # The kit and its wire types are shared; the rest of the engine is a sandboxed copy.
    assert same == [True, True, False]
