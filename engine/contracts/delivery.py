"""The `deliver` activity's contract: what a journey asks for and what it gets back.

This interface is stable. The implementation behind it may change (policies, templates,
claims, real channels); journeys and their recorded histories do not.

* `SendRequest.step` is the business key of the send within one journey entry: deterministic,
  the same on every retry and after continue-as-new, never the attempt number or the activity
  id. `delivery_id(request)` derives the delivery id from `workflow_id`, `entry_id` and `step`,
  so a retried activity finds the delivery it already made and returns the same outcome.
* `channels` is the fallback order. `holdout` is always false when the kit calls the activity:
  holdout members never reach it (the kit records `journey.message_withheld` instead).
* `SendOutcome.status`:
  - `sent` — handed to a channel (`channel`, `delivery_id` set);
  - `suppressed` — a policy stopped it (consent, suppression, erased member); not retried;
  - `deferred` — not now: the journey sleeps durably until `defer_until` and sends again
    with the same step key (quiet hours, frequency caps);
  - `failed` — permanently failed on every channel; not retried;
  - `in_doubt` — may have left; never re-sent blindly, reconciled by the delivery side;
  - `routed` — not an answer for the journey: the provider call belongs on the channel's own
    task queue (`task_queue`, rate-limited by Temporal); the kit calls `deliver` again there
    with the same request. Older implementations never answer it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

DELIVER = "deliver"
"""The activity name."""

SendStatus = Literal["sent", "suppressed", "deferred", "failed", "in_doubt", "routed"]


class SendRequest(BaseModel):
    journey: str
    member_id: str
    workflow_id: str
    entry_id: str = Field(description="The journey entry (first run id of the workflow chain).")
    step: str = Field(description="Business key of this send within the entry.")
    channels: list[str] = Field(min_length=1, description="Channels in fallback order.")
    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    purpose: Literal["marketing", "transactional"] = "marketing"
    variant: str = "control"
    holdout: bool = False


class SendOutcome(BaseModel):
    status: SendStatus
    delivery_id: str
    channel: str | None = None
    defer_until: dt.datetime | None = None
    reason: str = ""
    task_queue: str | None = None
    position: int | None = None
    """Store position of the `message.sent` event (when this call recorded it): journeys
    order a goal event against the message by it, whatever their own processing lag."""
    sent_at: dt.datetime | None = None
    """The `occurred_at` of `message.sent`: a goal that occurred before it is not the
    message's conversion."""


def delivery_id(request: SendRequest) -> str:
    """The deterministic delivery id of a send: same request business key, same id."""
    key = f"{request.workflow_id}\x1f{request.entry_id}\x1f{request.step}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]
