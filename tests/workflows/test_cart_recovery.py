"""Cart recovery on the time-skipping server, with the real activities on a real database."""

from __future__ import annotations

import asyncio
import datetime as dt

from journey_testkit import event, journey_worker, member_events, member_with, start, types_of
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyResult
from journeyman.workflows.cart_recovery import CartRecovery

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


def other(data: dict) -> dict:
    return {**CART, **data}


async def test_order_for_the_cart_exits_mid_wait_and_converts(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await temporal_env.sleep(dt.timedelta(hours=2))
        # An order for a different cart changes nothing; one for this cart ends it at once.
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"cart_id": "other"}))
        await temporal_env.sleep(dt.timedelta(hours=1))
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"cart_id": "c1", "total": 30}))
        result: JourneyResult = await handle.result()
    assert result.status == "exited" and result.reason == "ordered"
    assert [s.template for s in result.sends] == ["cart_reminder"]
    assert result.converted
    events = await member_events(store, member)
    converted = [e for e in events if e.type == "journey.converted"]
    assert len(converted) == 1
    assert converted[0].data["template"] == "cart_reminder"  # last touch
    assert converted[0].data["variant"] == result.variant
    assert converted[0].data["value"] == 30
    exited = next(e for e in events if e.type == "journey.exited")
    assert exited.data["reason"] == "ordered" and exited.data["converted"] is True


async def test_emptied_cart_exits_before_any_message(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await temporal_env.sleep(dt.timedelta(minutes=20))
        await handle.signal(EVENT_SIGNAL, event("cart.updated", other({"items": []})))
        result: JourneyResult = await handle.result()
    assert (result.status, result.reason, result.sends) == ("exited", "cart_emptied", [])
    assert "message.sent" not in await types_of(store, member)


async def test_cart_update_restarts_the_quiet_period(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await temporal_env.sleep(dt.timedelta(minutes=50))
        items = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]
        await handle.signal(EVENT_SIGNAL, event("cart.updated", other({"items": items})))
        await temporal_env.sleep(dt.timedelta(minutes=30))  # 80 min after the first update
        assert "message.sent" not in await types_of(store, member)
        result: JourneyResult = await handle.result()
    assert result.trigger_updates == 1
    sent = [e for e in await member_events(store, member) if e.type == "message.sent"]
    assert len(sent) == 2


async def test_conversion_after_the_last_message_is_credited_to_it(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await temporal_env.sleep(dt.timedelta(hours=48))  # coupon went out at 24 h
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"cart_id": "c1"}))
        result: JourneyResult = await handle.result()
    assert result.converted and len(result.sends) == 2
    converted = [e for e in await member_events(store, member) if e.type == "journey.converted"]
    assert converted[0].data["template"] == "cart_coupon"
    assert converted[0].data["delivery_id"] == result.sends[1].delivery_id


async def test_order_outside_the_attribution_window_is_not_a_conversion(
    temporal_env, store
) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            CartRecovery,
            member,
            trigger=event("cart.updated", CART),
            settings={"attribution_window": 3600},  # one hour after the last message
        )
        await temporal_env.sleep(dt.timedelta(hours=5))  # reminder at 1 h, window closed at 2 h
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"cart_id": "c1"}))
        result: JourneyResult = await handle.result()
    assert (result.status, result.reason) == ("exited", "ordered")
    assert not result.converted
    assert "journey.converted" not in await types_of(store, member)


async def test_holdout_member_goes_through_the_journey_but_gets_nothing(
    temporal_env, store
) -> None:
    member = member_with(CartRecovery, holdout=True)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        result: JourneyResult = await handle.result()
    assert result.holdout and result.sends == []
    assert result.withheld == ["cart_reminder", "cart_coupon"]
    types = await types_of(store, member)
    assert "message.sent" not in types
    assert types.count("journey.message_withheld") == 2
    entered = (await member_events(store, member))[0]
    assert entered.type == "journey.entered" and entered.data["holdout"] is True


async def test_redelivered_events_change_nothing(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    trigger = event("cart.updated", CART)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(temporal_env.client, tq, CartRecovery, member, trigger=trigger)
        update = event("cart.updated", other({"items": [{"sku": "C", "qty": 1}]}))
        for e in (trigger, update, update, trigger):
            await handle.signal(EVENT_SIGNAL, e)
        result: JourneyResult = await handle.result()
    assert result.duplicates_dropped >= 3  # the start signal itself repeats the trigger
    assert result.trigger_updates == 1
    assert len(result.sends) == 2
    assert (await types_of(store, member)).count("message.sent") == 2


async def test_settings_override_changes_delays_and_templates(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            CartRecovery,
            member,
            trigger=event("cart.updated", CART),
            settings={"quiet_period": 600, "coupon_delay": 60, "coupon_template": "cart_20"},
        )
        await temporal_env.sleep(dt.timedelta(minutes=15))
        # With the default one-hour quiet period nothing would have been sent yet.
        assert (await types_of(store, member)).count("message.sent") >= 1
        result: JourneyResult = await handle.result()
    assert [s.template for s in result.sends] == ["cart_reminder", "cart_20"]


async def test_cart_journey_re_enters_after_it_ended(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        first = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        await first.result()
        second = await start(
            temporal_env.client, tq, CartRecovery, member, trigger=event("cart.updated", CART)
        )
        result: JourneyResult = await second.result()
    assert len(result.sends) == 2
    entered = [e for e in await member_events(store, member) if e.type == "journey.entered"]
    assert len({e.data["entry_id"] for e in entered}) == 2
    # Each entry has its own delivery ids: the second entry really sent again.
    assert (await types_of(store, member)).count("message.sent") == 4


async def test_continue_as_new_keeps_steps_and_deadlines(temporal_env, store) -> None:
    member = member_with(CartRecovery, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            CartRecovery,
            member,
            trigger=event("cart.updated", CART),
            settings={"history_limit": 25},
        )
        await temporal_env.sleep(dt.timedelta(hours=2))  # reminder sent
        for i in range(12):  # signals grow the history past the limit
            await handle.signal(EVENT_SIGNAL, event("page.viewed", {"i": i}))
        result: JourneyResult = await handle.result()
    assert result.runs > 1
    assert [s.template for s in result.sends] == ["cart_reminder", "cart_coupon"]
    assert (await types_of(store, member)).count("message.sent") == 2


async def test_order_placed_while_the_reminder_is_in_flight_is_credited_to_it(
    temporal_env, store
) -> None:
    """The member orders after the provider took the reminder but before the journey has
    heard back from its send: the store order says the message came first, so it is a
    conversion credited to the reminder — even though, by the messages the journey knew of
    when the order arrived, the order fell outside the window after entry."""
    from journeyman.engine.activities.outbox import OutboxDelivery
    from temporalio import activity

    outbox = OutboxDelivery(store)
    member = member_with(CartRecovery, holdout=False)

    async def deliver_then_order(request):  # type: ignore[no-untyped-def]
        outcome = await outbox.deliver(request)
        if request.template == "cart_reminder":
            order = event("order.placed", {"cart_id": "c1", "total": 12})
            order.occurred_at = activity.info().scheduled_time + dt.timedelta(seconds=1)
            await temporal_env.client.get_workflow_handle(request.workflow_id).signal(
                EVENT_SIGNAL, order
            )
            await asyncio.sleep(1.0)  # the journey takes the signal while this send runs
        return outcome

    async with journey_worker(temporal_env.client, store, deliver_impl=deliver_then_order) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            CartRecovery,
            member,
            trigger=event("cart.updated", CART),
            # the reminder goes out at 1 h; a window of 30 min after entry would be long shut
            settings={"attribution_window": 1800},
        )
        result: JourneyResult = await handle.result()
    assert (result.status, result.reason) == ("exited", "ordered")
    assert result.converted
    converted = [e for e in await member_events(store, member) if e.type == "journey.converted"]
    assert len(converted) == 1
    assert converted[0].data["template"] == "cart_reminder"
    assert converted[0].data["delivery_id"] == result.sends[0].delivery_id
