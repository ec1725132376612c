"""Post-purchase survey: two days after an order, a satisfaction survey email (one run per
order). A refund of the order cancels it. Goal: the survey link clicked within 7 days."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from .kit import Journey, journey
from .spec import Exit, Goal, JourneySettings, Reentry, days, on_event

NAME = "post_purchase_survey"


class PostPurchaseSettings(JourneySettings):
    survey_delay: dt.timedelta = Field(default=days(2))
    survey_template: str = "satisfaction_survey"
    freshness: dt.timedelta | None = days(2)


def _survey_click(data: dict) -> bool:
    return data.get("journey") == NAME


@journey(
    NAME,
    trigger=on_event("order.placed", key="order_id"),
    exits=[Exit("order.refunded", same_key=True, reason="refunded")],
    goal=Goal("message.clicked", within=days(7), when=_survey_click),
    reentry=Reentry.always(),
    settings=PostPurchaseSettings,
    description="Ask for feedback two days after each order.",
)
class PostPurchaseSurvey(Journey):
    settings: PostPurchaseSettings

    async def steps(self) -> None:
        s = self.settings
        await self.sleep(s.survey_delay, step="after-order")
        await self.send(
            None,
            s.survey_template,
            step="survey",
            purpose="transactional",
            order_id=self.key,
            total=(self.trigger.data.get("total") if self.trigger else None),
        )
