"""`journeyman.workflows.testing`: a journey author's test needs the harness and the
journey, nothing private. Here it drives the built-in cart recovery through its branches."""

from __future__ import annotations

from journeyman.workflows import hours
from journeyman.workflows.cart_recovery import CartRecovery
from journeyman.workflows.testing import JourneyHarness, SendOutcome

CART = {"cart_id": "c1", "items": [{"product_id": "p-1", "quantity": 1}]}


async def test_reminder_then_coupon_then_an_order_converts(journey_harness) -> None:  # type: ignore[no-untyped-def]
    h = await journey_harness([CartRecovery])
    run = await h.begin(CartRecovery, trigger=("cart.updated", CART))
    await h.advance(hours(2))
    assert run.templates == ["cart_reminder"]
    assert run.sends[0].context["items"] == CART["items"]
    await h.advance(hours(23))
    assert run.templates == ["cart_reminder", "cart_coupon"]
    await run.send_event("order.placed", {"cart_id": "c1", "total": 30})
    result = await run.result()
    assert result.converted and result.status == "completed"
    assert run.recorded == ["journey.entered", "journey.converted", "journey.exited"]


async def test_an_emptied_cart_ends_the_run_before_any_send(journey_harness) -> None:  # type: ignore[no-untyped-def]
    h = await journey_harness([CartRecovery])
    run = await h.begin(CartRecovery, trigger=("cart.updated", CART))
    await h.advance(hours(0.5))
    await run.send_event("cart.updated", {"cart_id": "c1", "items": []})
    result = await run.result()
    assert (result.status, result.reason) == ("exited", "cart_emptied")
    assert run.sends == []


async def test_holdout_members_are_sent_nothing_and_outcomes_can_be_chosen() -> None:
    def refused(request):  # type: ignore[no-untyped-def]
        return SendOutcome(status="suppressed", delivery_id="d", reason="no consent")

    async with JourneyHarness.start([CartRecovery], outcome=refused) as h:
        held = await h.begin(CartRecovery, trigger=("cart.updated", CART), holdout=True)
        other = await h.begin(CartRecovery, trigger=("cart.updated", {**CART, "cart_id": "c2"}))
        await h.advance(hours(30))
        assert held.templates == [] and all(s.holdout for s in held.sends)
        assert [s.template for s in other.sends] == ["cart_reminder", "cart_coupon"]
        assert (await other.result()).sends[0].status == "suppressed"
