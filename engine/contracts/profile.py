"""The member profile as the rest of the engine sees it (the `member_profiles` projection row).

Journeys read it (`self.profile`), delivery policies read consent, time zone and suppression
from it, and the inactivity scan reads `last_activity_at`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

LifecycleStage = Literal["new", "active", "at_risk", "lapsed", "churned"]


class MemberProfile(BaseModel):
    member_id: str
    first_seen_at: dt.datetime | None = None
    last_seen_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    order_count: int = 0
    monetary_value: float = 0.0
    recency_score: int | None = Field(default=None, description="RFM recency, 1 (worst) to 5")
    frequency_score: int | None = None
    monetary_score: int | None = None
    lifecycle_stage: LifecycleStage = "new"
    consent: dict[str, bool] = Field(
        default_factory=dict,
        description="Consent per channel and purpose, keyed '<channel>:<purpose>' "
        "(e.g. 'email:marketing'); a missing key means the channel's default.",
    )
    timezone: str | None = None
    locale: str | None = None
    suppressed: dict[str, str] = Field(
        default_factory=dict, description="Suppressed channels and why (bounce, complaint, stop)."
    )
    traits: dict[str, object] = Field(default_factory=dict, description="Non-personal traits.")
    erased: bool = False
