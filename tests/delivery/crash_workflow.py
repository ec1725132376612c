"""A workflow that calls `deliver` on another task queue with a short timeout, as the journey
kit does (the crash test needs Temporal to notice a dead worker within seconds)."""

from __future__ import annotations

import datetime as dt

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import DELIVER, SendOutcome, SendRequest


@workflow.defn(name="deliver_once")
class DeliverOnce:
    @workflow.run
    async def run(self, request: SendRequest, task_queue: str) -> SendOutcome:
        return await workflow.execute_activity(
            DELIVER,
            request,
            task_queue=task_queue,
            result_type=SendOutcome,
            start_to_close_timeout=dt.timedelta(seconds=3),
            retry_policy=RetryPolicy(
                initial_interval=dt.timedelta(milliseconds=200), maximum_attempts=5
            ),
        )
