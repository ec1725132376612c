"""30-day win-back: members with no activity for 30 days (a setting) get a "we miss you"
email with an offer; after 3 more quiet days, a push (or SMS) follow-up. Any activity ends
it; an order within 7 days of the last message is a conversion. Found by the inactivity
scan (`journeyman.workflows.scan`), never by one sleeping workflow per member."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from .kit import Journey, journey
from .spec import ANY_ACTIVITY, Exit, Goal, JourneySettings, Reentry, days, inactivity


class WinbackSettings(JourneySettings):
    inactive_days: float = 30
    offer_template: str = "we_miss_you"
    offer_percent: int = 15
    follow_up_delay: dt.timedelta = Field(default=days(3))
    follow_up_template: str = "we_miss_you_follow_up"
    channels: list[str] = Field(default_factory=lambda: ["email"])
    follow_up_channels: list[str] = Field(default_factory=lambda: ["push", "sms"])


@journey(
    "winback",
    trigger=inactivity(days=30),
    exits=[Exit(ANY_ACTIVITY, reason="active_again")],
    goal=Goal("order.placed", within=days(7)),
    reentry=Reentry.after(days(90)),
    holdout=0.1,
    settings=WinbackSettings,
    description="Bring back members who have been quiet for 30 days.",
)
class Winback(Journey):
    settings: WinbackSettings

    async def steps(self) -> None:
        s = self.settings
        await self.send(s.channels, s.offer_template, step="offer", offer_percent=s.offer_percent)
        await self.sleep(s.follow_up_delay, step="quiet")
        await self.send(
            s.follow_up_channels,
            s.follow_up_template,
            step="follow-up",
            offer_percent=s.offer_percent,
        )
