"""Double opt-in: confirm a marketing subscription before it counts.

Off by default; turn it on with `JOURNEYMAN_JOURNEYS='{"double_opt_in": {"enabled": true}}'`.
Then a marketing grant on one of its channels (`PUT /v1/members/{id}/consent`) is recorded
as `member.consent_requested`; this journey sends a confirmation message (transactional:
the member has not said yes to marketing yet) with a signed link, and following the link
(`POST /v1/consent/confirm/{token}`) appends `member.consent_changed` granted, with source
`double_opt_in`. Until then, consent stays as it was.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from temporalio import workflow
from temporalio.common import RetryPolicy

from .kit import Journey, journey
from .spec import JourneySettings, Reentry, days, hours, on_event

CONFIRM_ACTIVITY = "consent_confirmation_link"  # journeyman.engine.privacy.consent.CONFIRM_ACTIVITY


class DoubleOptInSettings(JourneySettings):
    enabled: bool = False
    channels: list[str] = Field(
        default_factory=lambda: ["email"],
        description="Channels whose marketing grants need confirming.",
    )
    template: str = "consent_confirmation"
    link_valid_for: dt.timedelta = Field(
        default=days(7), description="How long the confirmation link works."
    )
    freshness: dt.timedelta | None = hours(1)


@journey(
    "double_opt_in",
    trigger=on_event("member.consent_requested", key="request_id"),
    reentry=Reentry.always(),
    settings=DoubleOptInSettings,
    description="Confirm marketing subscriptions with a signed link (double opt-in).",
)
class DoubleOptIn(Journey):
    settings: DoubleOptInSettings

    async def steps(self) -> None:
        s = self.settings
        data = self.trigger.data if self.trigger is not None else {}
        channel = data.get("channel")
        if channel not in s.channels or data.get("purpose", "marketing") != "marketing":
            return
        url = await workflow.execute_activity(
            CONFIRM_ACTIVITY,
            {
                "member_id": self.member_id,
                "channel": channel,
                "purpose": "marketing",
                "request_id": str(data.get("request_id") or self.key),
                "valid_for": s.link_valid_for.total_seconds(),
            },
            result_type=str,
            start_to_close_timeout=dt.timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=dt.timedelta(seconds=30)),
        )
        await self.send(
            channel, s.template, step="confirm", purpose="transactional", confirm_url=url
        )
