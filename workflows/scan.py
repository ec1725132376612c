"""The inactivity scan: a Temporal Schedule runs this workflow (hourly by default); its one
activity pages through the profile projection for members who became due for an
inactivity journey and starts their runs. Temporal work grows with the members who are due,
not with the member count."""

from __future__ import annotations

import datetime as dt

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.activities import ScanRequest, ScanResult

SCAN_WORKFLOW = "inactivity_scan"


@workflow.defn(name=SCAN_WORKFLOW)
class InactivityScan:
    @workflow.run
    async def run(self, request: ScanRequest) -> ScanResult:
        return await workflow.execute_activity(
            "scan_inactive_members",
            request,
            result_type=ScanResult,
            start_to_close_timeout=dt.timedelta(hours=1),
            heartbeat_timeout=dt.timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=10),
        )
