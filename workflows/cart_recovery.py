"""Cart recovery: a cart left alone for an hour gets an email reminder; a day after the cart,
an SMS with a coupon. One run per cart; an order for the cart or an emptied cart ends it.
The goal is an order within 3 days of the last message."""

from __future__ import annotations

import datetime as dt
import hashlib

from pydantic import Field

from .kit import Journey, journey
from .spec import Exit, Goal, JourneySettings, Reentry, days, hours, on_event


class CartRecoverySettings(JourneySettings):
    quiet_period: dt.timedelta = Field(
        default=hours(1), description="How long the cart must be left alone before the reminder."
    )
    coupon_delay: dt.timedelta = Field(
        default=hours(23), description="From the reminder to the coupon SMS (24 h after the cart)."
    )
    reminder_template: str = "cart_reminder"
    coupon_template: str = "cart_coupon"
    coupon_percent: int = 10
    channels: list[str] = Field(default_factory=lambda: ["email"])
    coupon_channels: list[str] = Field(default_factory=lambda: ["sms", "email"])


def _emptied(data: dict) -> bool:
    return not data.get("items")


@journey(
    "cart_recovery",
    trigger=on_event("cart.updated", key="cart_id"),
    exits=[
        Exit("order.placed", same_key=True, reason="ordered"),
        Exit("cart.updated", same_key=True, when=_emptied, reason="cart_emptied"),
    ],
    goal=Goal("order.placed", within=days(3), same_key=True),
    reentry=Reentry.always(),
    variants={"control": 1, "urgent": 1},
    holdout=0.1,
    settings=CartRecoverySettings,
    freshness=hours(1),
    description="Remind members of the cart they left; coupon by SMS after a day.",
)
class CartRecovery(Journey):
    settings: CartRecoverySettings

    async def steps(self) -> None:
        s = self.settings
        # Wait until the cart has been left alone for the quiet period: every update of
        # this cart starts the hour again. An order for the cart ends the journey (exit).
        while await self.wait_for("cart.updated", timeout=s.quiet_period):
            pass
        cart = self.trigger.data if self.trigger else {}
        await self.send(
            s.channels,
            s.reminder_template,
            step="reminder",
            cart_id=self.key,
            items=cart.get("items", []),
            urgent=self.variant == "urgent",
        )
        await self.sleep(s.coupon_delay, step="before-coupon")
        await self.send(
            s.coupon_channels,
            s.coupon_template,
            step="coupon",
            cart_id=self.key,
            coupon_code=self.coupon_code(),
            coupon_percent=s.coupon_percent,
        )
        # The kit keeps listening for the goal (an order for this cart) for 3 days.

    def coupon_code(self) -> str:
        digest = hashlib.sha256(f"{self.workflow_id}/{self.state.entry_id}".encode()).hexdigest()
        return f"CART{self.settings.coupon_percent}-{digest[:8].upper()}"
