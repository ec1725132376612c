"""Cart recovery on the time-skipping server, with the real activities on a real database."""

from __future__ import annotations

from engine.activities import JourneyResult
from workflows.cart_recovery import CartRecovery

from .helpers import event, journey_worker, member_events, member_with, start, types_of

CART = {"cart_id": "c1", "items": [{"sku": "A", "qty": 1}]}


async def test_abandoned_cart_gets_reminder_then_coupon(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        result: JourneyResult = await handle.result()
    assert result.status == "completed"
    assert [s.template for s in result.sends] == ["cart_reminder", "cart_coupon"]
    assert [s.channel for s in result.sends] == ["email", "sms"]
    assert not result.converted
    types = await types_of(store, member)
    assert types == ["journey.entered", "message.sent", "message.sent", "journey.exited"]
    sent = [e for e in await member_events(store, member) if e.type == "message.sent"]
    assert sent[1].data["template"] == "cart_coupon"
    assert sent[0].data["step"].endswith("reminder")
