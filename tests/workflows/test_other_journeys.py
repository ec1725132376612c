"""Win-back, welcome series and post-purchase survey on the time-skipping server."""

from __future__ import annotations

import datetime as dt

import pytest
from journey_testkit import event, journey_worker, member_events, member_with, start, types_of
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyResult
from journeyman.workflows import Reentry
from journeyman.workflows.post_purchase import PostPurchaseSurvey
from journeyman.workflows.welcome import Welcome
from journeyman.workflows.winback import Winback
from temporalio.exceptions import WorkflowAlreadyStartedError

DAY = dt.timedelta(days=1)


# ---------------------------------------------------------------------------- win-back
async def test_winback_sends_offer_then_follow_up_by_push(temporal_env, store) -> None:
    member = member_with(Winback, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        result: JourneyResult = await (
            await start(temporal_env.client, tq, Winback, member)
        ).result()
    assert result.status == "completed" and not result.converted
    assert [(s.template, s.channel) for s in result.sends] == [
        ("we_miss_you", "email"),
        ("we_miss_you_follow_up", "push"),
    ]


async def test_winback_exits_on_activity_and_still_counts_an_order_in_the_window(
    temporal_env, store
) -> None:
    member = member_with(Winback, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(temporal_env.client, tq, Winback, member)
        await temporal_env.sleep(DAY)
        await handle.signal(EVENT_SIGNAL, event("page.viewed", {"url": "/"}))
        await temporal_env.sleep(2 * DAY)  # the journey has left its steps, the window is open
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"total": 80}))
        result: JourneyResult = await handle.result()
    assert (result.status, result.reason) == ("exited", "active_again")
    assert [s.template for s in result.sends] == ["we_miss_you"]
    assert result.converted
    converted = [e for e in await member_events(store, member) if e.type == "journey.converted"]
    assert converted[0].data["template"] == "we_miss_you"


async def test_winback_without_order_in_window_does_not_convert(temporal_env, store) -> None:
    member = member_with(Winback, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, Winback, member, settings={"attribution_window": 86400}
        )
        await temporal_env.sleep(DAY / 2)
        await handle.signal(EVENT_SIGNAL, event("app.opened"))
        result: JourneyResult = await handle.result()
    assert result.reason == "active_again" and not result.converted
    assert "journey.converted" not in await types_of(store, member)


async def test_winback_holdout_is_sent_nothing(temporal_env, store) -> None:
    member = member_with(Winback, holdout=True)
    async with journey_worker(temporal_env.client, store) as tq:
        result: JourneyResult = await (
            await start(temporal_env.client, tq, Winback, member)
        ).result()
    assert result.sends == [] and result.withheld == ["we_miss_you", "we_miss_you_follow_up"]
    assert "message.sent" not in await types_of(store, member)


def test_winback_cool_down_rule() -> None:
    rule = Winback.__journey__.reentry
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    assert rule.allows(entries=0, exited_at=None, now=now)
    assert not rule.allows(entries=1, exited_at=now - 10 * DAY, now=now)
    assert rule.allows(entries=1, exited_at=now - 91 * DAY, now=now)
    assert not Reentry.never().allows(entries=1, exited_at=now - 1000 * DAY, now=now)
    assert Reentry.always().allows(entries=5, exited_at=now, now=now)


# ---------------------------------------------------------------------------- welcome
async def test_welcome_series_without_an_order_sends_all_three(temporal_env, store) -> None:
    member = member_with(Welcome, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, Welcome, member, trigger=event("member.registered")
        )
        result: JourneyResult = await handle.result()
    assert [s.template for s in result.sends] == [
        "welcome",
        "welcome_tips",
        "first_order_incentive",
    ]
    assert not result.converted


@pytest.mark.parametrize(
    ("order_day", "templates"),
    [(2, ["welcome"]), (5, ["welcome", "welcome_tips"])],
)
async def test_welcome_series_stops_when_they_order(
    temporal_env, store, order_day: int, templates: list[str]
) -> None:
    member = member_with(Welcome, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, Welcome, member, trigger=event("member.registered")
        )
        await temporal_env.sleep(order_day * DAY)
        await handle.signal(EVENT_SIGNAL, event("order.placed", {"total": 12}))
        result: JourneyResult = await handle.result()
    assert [s.template for s in result.sends] == templates
    assert result.converted and result.status == "completed"


async def test_welcome_never_re_enters(temporal_env, store) -> None:
    member = member_with(Welcome, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        first = await start(
            temporal_env.client, tq, Welcome, member, trigger=event("member.registered")
        )
        await first.result()
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(
                temporal_env.client, tq, Welcome, member, trigger=event("member.registered")
            )
    assert (await types_of(store, member)).count("journey.entered") == 1


async def test_welcome_holdout(temporal_env, store) -> None:
    member = member_with(Welcome, holdout=True)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client, tq, Welcome, member, trigger=event("member.registered")
        )
        result: JourneyResult = await handle.result()
    assert result.sends == [] and len(result.withheld) == 3
    assert "message.sent" not in await types_of(store, member)


# ---------------------------------------------------------------------------- post-purchase
ORDER = {"order_id": "o-1", "total": 50}


async def test_survey_two_days_after_order_and_click_converts(temporal_env, store) -> None:
    member = member_with(PostPurchaseSurvey, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            PostPurchaseSurvey,
            member,
            trigger=event("order.placed", ORDER),
        )
        await temporal_env.sleep(DAY)
        assert "message.sent" not in await types_of(store, member)
        await temporal_env.sleep(2 * DAY)
        # A click on another journey's message is not this goal; the survey click is.
        await handle.signal(EVENT_SIGNAL, event("message.clicked", {"journey": "welcome"}))
        await handle.signal(
            EVENT_SIGNAL, event("message.clicked", {"journey": "post_purchase_survey"})
        )
        result: JourneyResult = await handle.result()
    assert [s.template for s in result.sends] == ["satisfaction_survey"]
    assert result.converted
    assert handle.id.endswith("/o-1")


async def test_refund_before_the_survey_cancels_it(temporal_env, store) -> None:
    member = member_with(PostPurchaseSurvey, holdout=False)
    async with journey_worker(temporal_env.client, store) as tq:
        handle = await start(
            temporal_env.client,
            tq,
            PostPurchaseSurvey,
            member,
            trigger=event("order.placed", ORDER),
        )
        await temporal_env.sleep(DAY)
        await handle.signal(EVENT_SIGNAL, event("order.refunded", {"order_id": "o-2"}))
        await handle.signal(EVENT_SIGNAL, event("order.refunded", {"order_id": "o-1"}))
        result: JourneyResult = await handle.result()
    assert (result.status, result.reason, result.sends) == ("exited", "refunded", [])


def test_settings_accept_seconds_and_reject_unknown_fields() -> None:
    spec = PostPurchaseSurvey.__journey__
    assert spec.resolve_settings({"survey_delay": 5}).survey_delay == dt.timedelta(seconds=5)
    with pytest.raises(ValueError, match="survey_delai"):
        spec.resolve_settings({"survey_delai": 5})
