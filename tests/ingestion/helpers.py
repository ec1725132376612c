"""Small builders shared by the ingestion tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def event(
    type: str = "page.viewed",
    *,
    event_id: str | None = None,
    at: dt.datetime | None = None,
    properties: dict[str, Any] | None = None,
    **member: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "type": type,
        "member": member,
        "occurred_at": (at or T0).isoformat(),
        "properties": properties or {},
    }
