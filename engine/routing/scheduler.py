"""The inactivity scheduler: a Temporal Schedule that runs the inactivity scan workflow
(hourly by default). The scan's activity reads only the members who are due (see
`journeyman.engine.profiles.inactivity_due`) and starts their inactivity journeys (win-back) in
batches.

    journeyman scheduler --every 3600     # create or update the schedule, then exit
"""

from __future__ import annotations

import datetime as dt

from journeyman.engine.contracts import ScanRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

SCHEDULE_ID = "journeyman-inactivity-scan"


def scan_schedule(
    *, task_queue: str, every: dt.timedelta, page_size: int = 500, schedule_id: str = SCHEDULE_ID
) -> Schedule:
    from journeyman.workflows.scan import SCAN_WORKFLOW

    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCAN_WORKFLOW,
            ScanRequest(page_size=page_size),
            id=f"{schedule_id}-run",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # One scan at a time: a slow scan makes the next one skip, never pile up.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(
    client: Client,
    *,
    task_queue: str = "journeyman",
    every: dt.timedelta = dt.timedelta(hours=1),
    page_size: int = 500,
    schedule_id: str = SCHEDULE_ID,
) -> str:
    """Create the scan schedule, or bring an existing one up to these settings."""
    schedule = scan_schedule(
        task_queue=task_queue, every=every, page_size=page_size, schedule_id=schedule_id
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(update)
        return "updated"
