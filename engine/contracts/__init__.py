"""The wire types journeys and the engine exchange: a journey's input, events, records and
result; the send request and its outcome; the member profile. They import nothing of the
engine, and pass through the journey sandbox as they are."""

from .delivery import DELIVER, SendOutcome, SendRequest, SendStatus, delivery_id
from .journeys import (
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
