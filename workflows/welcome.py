"""Welcome series: a welcome email on registration; tips on day 3 unless they have ordered;
a first-order incentive on day 7 if they still have not. Goal: a first order."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from .kit import Journey, journey
from .spec import Goal, JourneySettings, Reentry, days, on_event


class WelcomeSettings(JourneySettings):
    tips_after: dt.timedelta = Field(default=days(3), description="From registration to tips.")
    incentive_after: dt.timedelta = Field(
        default=days(7), description="From registration to the first-order incentive."
    )
    welcome_template: str = "welcome"
    tips_template: str = "welcome_tips"
    incentive_template: str = "first_order_incentive"
    incentive_percent: int = 10
    freshness: dt.timedelta | None = days(2)


@journey(
    "welcome",
    trigger=on_event("member.registered"),
    goal=Goal("order.placed", within=days(7)),
    listens=["order.placed"],
    reentry=Reentry.never(),
    holdout=0.1,
    settings=WelcomeSettings,
    description="Welcome new members; nudge them to a first order.",
)
class Welcome(Journey):
    settings: WelcomeSettings

    async def steps(self) -> None:
        s = self.settings
        await self.send(None, s.welcome_template, step="welcome")
        ordered = await self.wait_for("order.placed", until=self.entered_at + s.tips_after)
        if ordered:
            return
        await self.send(None, s.tips_template, step="tips")
        ordered = await self.wait_for("order.placed", until=self.entered_at + s.incentive_after)
        if ordered or (self.profile is not None and self.profile.order_count > 0):
            return
        await self.send(
            None, s.incentive_template, step="incentive", incentive_percent=s.incentive_percent
        )
