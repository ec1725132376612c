"""Two changed versions of cart recovery, for the replay tests: the same change (a teaser
email before the reminder) made without and with `self.patched`."""

from __future__ import annotations

from journeyman.workflows.cart_recovery import CartRecovery, CartRecoverySettings
from journeyman.workflows.kit import Journey, journey

_spec = CartRecovery.__journey__
_decl = dict(
    trigger=_spec.trigger,
    exits=_spec.exits,
    goal=_spec.goal,
    reentry=_spec.reentry,
    variants=_spec.variants,
    holdout=_spec.holdout,
    settings=CartRecoverySettings,
)


@journey("cart_recovery", **_decl)
class CartRecoveryUnpatched(Journey):
    async def steps(self) -> None:
        s = self.settings
        while await self.wait_for("cart.updated", timeout=s.quiet_period):
            pass
        await self.send(s.channels, "cart_teaser", step="teaser")  # new, unguarded
        await self.send(s.channels, s.reminder_template, step="reminder")
        await self.sleep(s.coupon_delay, step="before-coupon")
        await self.send(s.coupon_channels, s.coupon_template, step="coupon")


@journey("cart_recovery", **_decl)
class CartRecoveryPatched(Journey):
    async def steps(self) -> None:
        s = self.settings
        while await self.wait_for("cart.updated", timeout=s.quiet_period):
            pass
        if self.patched("cart-teaser"):  # members already inside skip it
            await self.send(s.channels, "cart_teaser", step="teaser")
        await self.send(s.channels, s.reminder_template, step="reminder")
        await self.sleep(s.coupon_delay, step="before-coupon")
        await self.send(s.coupon_channels, s.coupon_template, step="coupon")
