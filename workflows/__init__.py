"""The journey authoring kit. A journey is a `Journey` subclass decorated with `@journey`:

    from journeyman.workflows import Journey, journey, on_event, Exit, Goal, hours, days

    @journey("cart_recovery", trigger=on_event("cart.updated", key="cart_id"),
             exits=[Exit("order.placed", same_key=True)],
             goal=Goal("order.placed", within=days(3)))
    class CartRecovery(Journey):
        async def steps(self) -> None:
            await self.sleep(hours(1))
            await self.send("email", "cart_reminder")

A journey can also start when a member enters a segment computed from the profile:

    from journeyman.workflows import Segment, segment_entry

    VIP = Segment("vip", when=lambda p: p.monetary_score == 5)  # via register_segments

    @journey("vip_thanks", trigger=segment_entry("vip"))
    class VipThanks(Journey): ...

See docs/journeys.md.
"""

from temporalio import workflow

from .kit import Journey, journey
from .spec import (
    ANY_ACTIVITY,
    DEFAULT_ACTIVITY_TYPES,
    Exit,
    Goal,
    JourneySettings,
    JourneySpec,
    Reentry,
    Trigger,
    days,
    hours,
    inactivity,
    minutes,
    on_event,
    seconds,
    segment_entry,
)

with workflow.unsafe.imports_passed_through():
    from journeyman.engine.segments import Segment

__all__ = [
    "ANY_ACTIVITY",
    "DEFAULT_ACTIVITY_TYPES",
    "Exit",
    "Goal",
    "Journey",
    "JourneySettings",
    "JourneySpec",
    "Reentry",
    "Segment",
    "Trigger",
    "days",
    "hours",
    "inactivity",
    "journey",
    "minutes",
    "on_event",
    "seconds",
    "segment_entry",
]
