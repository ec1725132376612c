"""The inactivity scan: a Temporal Schedule runs this workflow (hourly by default); its first
activity reads the members who became due for an inactivity journey (`inactivity_due`, by
its partial index) and starts their runs in batches. Rows read and Temporal work grow with
the members who are due, not with the member count.

Its second activity, `refresh_segments`, re-evaluates the segments of members whose recency
score or lifecycle stage can have changed since they were last evaluated: those change with
time alone, without an event that would make the profile projection look at the member.
(Scans started before this step existed replay without it: `workflow.patched`.)"""

from __future__ import annotations

import datetime as dt

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.contracts import (
        ScanRequest,
        ScanResult,
        SegmentRefreshRequest,
        SegmentRefreshResult,
    )

SCAN_WORKFLOW = "inactivity_scan"
SEGMENTS_PATCH = "refresh-segments"


@workflow.defn(name=SCAN_WORKFLOW)
class InactivityScan:
    @workflow.run
    async def run(self, request: ScanRequest) -> ScanResult:
        result = await workflow.execute_activity(
            "scan_inactive_members",
            request,
            result_type=ScanResult,
            start_to_close_timeout=dt.timedelta(hours=1),
            heartbeat_timeout=dt.timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=10),
        )
        if workflow.patched(SEGMENTS_PATCH):
            refreshed = await workflow.execute_activity(
                "refresh_segments",
                SegmentRefreshRequest(page_size=request.page_size, now=request.now),
                result_type=SegmentRefreshResult,
                start_to_close_timeout=dt.timedelta(hours=1),
                heartbeat_timeout=dt.timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=10),
            )
            result = result.model_copy(update={"segments": refreshed})
        return result
