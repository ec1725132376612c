"""Activities: the only road from a journey to a side effect.

Workflow code imports this package through the sandbox
(`with workflow.unsafe.imports_passed_through(): from journeyman.engine.activities import ...`).
"""

from .delivery_contract import DELIVER, SendOutcome, SendRequest, SendStatus, delivery_id
from .models import (
    EVENT_SIGNAL,
    JourneyEvent,
    JourneyInput,
    JourneyRecord,
    JourneyResult,
    JourneyState,
    ProfileRequest,
    ScanRequest,
    ScanResult,
    SegmentRefreshRequest,
    SegmentRefreshResult,
    SendSummary,
    StepRecord,
    Touch,
)

__all__ = [
    "DELIVER",
    "EVENT_SIGNAL",
    "JourneyEvent",
    "JourneyInput",
    "JourneyRecord",
    "JourneyResult",
    "JourneyState",
    "ProfileRequest",
    "ScanRequest",
    "ScanResult",
    "SegmentRefreshRequest",
    "SegmentRefreshResult",
    "SendOutcome",
    "SendRequest",
    "SendStatus",
    "SendSummary",
    "StepRecord",
    "Touch",
    "delivery_id",
]
