"""Late-arriving goal events: a goal is credited to a message only if it occurred after the
send, and counts only if it occurred after the journey began, in treatment and holdout
alike, whatever order the events arrive in."""

from __future__ import annotations

import datetime as dt

import pytest
from journey_testkit import JOURNEYS, event, journey_worker, member_events, member_with, start
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyResult
from journeyman.workflows.cart_recovery import CartRecovery
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

CART = {"cart_id": "c1", "items": [{"sku": "A", "qty": 1}]}


async def _late_order(
    temporal_env, store, *, holdout: bool, occurred: dt.timedelta
) -> tuple[JourneyResult, list, WorkflowHistory]:
    """Run cart recovery; once the reminder has gone out (or been withheld) at 1 h, an order
    arrives that occurred `occurred` after the journey's start."""
    member = member_with(CartRecovery, holdout=holdout)
    began = await temporal_env.get_current_time()
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await temporal_env.sleep(dt.timedelta(hours=2))
        order = event("order.placed", {"cart_id": "c1", "total": 20})
        order.occurred_at = began + occurred
        await handle.signal(EVENT_SIGNAL, order)
        result: JourneyResult = await handle.result()
        history = await handle.fetch_history()
    converted = [e for e in await member_events(store, member) if e.type == "journey.converted"]
    return result, converted, history


@pytest.mark.parametrize("holdout", [False, True], ids=["treatment", "holdout"])
async def test_an_order_from_before_the_journey_converts_nothing(
    temporal_env, store, holdout: bool
) -> None:
    result, converted, _ = await _late_order(
        temporal_env, store, holdout=holdout, occurred=-dt.timedelta(minutes=10)
    )
    assert (result.status, result.reason) == ("exited", "ordered")  # the cart is done
    assert not result.converted and converted == []


@pytest.mark.parametrize("holdout", [False, True], ids=["treatment", "holdout"])
async def test_an_order_from_before_the_send_is_not_credited_to_it(
    temporal_env, store, holdout: bool
) -> None:
    result, converted, history = await _late_order(
        temporal_env, store, holdout=holdout, occurred=dt.timedelta(minutes=30)
    )
    # It happened while the journey waited, before any message: a conversion of the
    # journey, credited to no message (never with a negative time to convert).
    assert result.converted and len(converted) == 1
    data = converted[0].data
    assert (data["delivery_id"], data["step"], data["template"]) == (None, None, None)
    # The run took the new path behind its patch, and replays deterministically.
    markers = [str(e.marker_recorded_event_attributes) for e in history.events]
    assert any("journeyman-goal-after-send" in m for m in markers)
    replayer = Replayer(workflows=JOURNEYS, data_converter=pydantic_data_converter)
    assert (await replayer.replay_workflow(history)).replay_failure is None


@pytest.mark.parametrize("holdout", [False, True], ids=["treatment", "holdout"])
async def test_an_order_from_after_the_send_arriving_late_is_credited_to_it(
    temporal_env, store, holdout: bool
) -> None:
    result, converted, _ = await _late_order(
        temporal_env, store, holdout=holdout, occurred=dt.timedelta(minutes=70)
    )
    assert result.converted and len(converted) == 1
    data = converted[0].data
    assert data["template"] == "cart_reminder" and data["withheld"] is holdout
