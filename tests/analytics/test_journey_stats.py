"""Funnels, lift and traces computed from events in a real store."""

from __future__ import annotations

import datetime as dt

from journeyman.engine.analytics.report import journey_stats, member_trace
from journeyman.event_store import NewEvent, PostgresEventStore

T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


async def entry(
    store: PostgresEventStore,
    member: str,
    entry_id: str,
    *,
    variant: str = "control",
    holdout: bool = False,
    sent: list[tuple[str, str]] = (),  # (delivery_id, channel)
    delivered: list[str] = (),
    clicked: list[str] = (),
    converted: float | None = None,
) -> None:
    base = {"journey": "cart_recovery", "entry_id": entry_id, "workflow_id": f"wf-{entry_id}"}
    events = [
        NewEvent(
            "journey.entered",
            {**base, "variant": variant, "holdout": holdout},
            event_id=f"{entry_id}-in",
            occurred_at=T0,
        )
    ]
    if holdout:
        events.append(
            NewEvent(
                "journey.message_withheld",
                {**base, "step": "reminder"},
                event_id=f"{entry_id}-wh",
                occurred_at=T0,
            )
        )
    for did, channel in sent:
        events.append(
            NewEvent(
                "message.sent",
                {
                    **base,
                    "delivery_id": did,
                    "channel": channel,
                    "step": "reminder",
                    "variant": variant,
                },
                event_id=f"{did}-sent",
                occurred_at=T0 + dt.timedelta(hours=1),
            )
        )
    for did in delivered:
        events.append(
            NewEvent(
                "message.delivered",
                {"delivery_id": did},
                event_id=f"{did}-dl",
                occurred_at=T0 + dt.timedelta(hours=1),
            )
        )
    for did in clicked:
        events.append(
            NewEvent(
                "message.clicked",
                {"delivery_id": did},
                event_id=f"{did}-ck",
                occurred_at=T0 + dt.timedelta(hours=2),
            )
        )
    if converted is not None:
        at = T0 + dt.timedelta(hours=3)
        events.append(
            NewEvent(
                "journey.converted",
                {
                    **base,
                    "goal": "order.placed",
                    "variant": variant,
                    "holdout": holdout,
                    "value": converted,
                    "at": at.isoformat(),
                    "delivery_id": sent[0][0] if sent else None,
                    "step": "reminder",
                },
                event_id=f"{entry_id}-cv",
                occurred_at=at,
            )
        )
    events.append(
        NewEvent(
            "journey.exited",
            {**base, "reason": "completed"},
            event_id=f"{entry_id}-out",
            occurred_at=at if converted else T0,
        )
    )
    await store.append(f"member-{member}", events)


async def test_funnel_and_lift_count_what_the_events_say(store: PostgresEventStore) -> None:
    await entry(
        store, "a", "e1", sent=[("d1", "email")], delivered=["d1"], clicked=["d1"], converted=30.0
    )
    await entry(store, "b", "e2", sent=[("d2", "email"), ("d3", "sms")], delivered=["d2"])
    await entry(store, "c", "e3", variant="urgent", sent=[("d4", "sms")], converted=10.0)
    await entry(store, "d", "e4", holdout=True)
    await entry(store, "e", "e5", holdout=True, converted=5.0)
    (stats,) = await journey_stats(store.pool)
    assert stats.journey == "cart_recovery"
    control = stats.variants["control"]
    assert (
        control.entered,
        control.messaged,
        control.delivered,
        control.clicked,
        control.converted,
    ) == (2, 2, 2, 1, 1)
    assert stats.variants["urgent"].converted == 1
    assert stats.treatment.entered == 3 and stats.treatment.revenue == 40.0
    assert (stats.holdout.entered, stats.holdout.messaged, stats.holdout.converted) == (2, 2, 1)
    assert stats.channels == {
        "email": {"sent": 2, "delivered": 2, "clicked": 1},
        "sms": {"sent": 2, "delivered": 0, "clicked": 0},
    }
    lift = stats.conversion_lift()
    assert lift is not None and abs(lift.estimate - (2 / 3 - 1 / 2)) < 1e-9
    assert lift.low < lift.estimate < lift.high
    assert stats.time_to_convert_s["n"] == 2
    assert stats.time_to_convert_s["p50"] == 7200.0
    as_json = stats.as_dict()
    assert as_json["total"]["entered"] == 5
    assert as_json["lift"]["conversion_rate"]["significant"] is False


async def test_filter_by_journey_and_trace_explains(store: PostgresEventStore) -> None:
    await entry(store, "a", "e1", sent=[("d1", "email")], converted=12.0)
    await entry(store, "z", "h1", holdout=True)
    await store.append(
        "member-z",
        [
            NewEvent(
                "message.suppressed",
                {"journey": "cart_recovery", "step": "coupon", "reason": "frequency cap reached"},
                event_id="sup1",
            )
        ],
    )
    assert await journey_stats(store.pool, "welcome") == []
    trace = await member_trace(store.pool, "z")
    texts = [t["explanation"] for t in trace]
    assert texts[0] == "entered cart_recovery, variant control, holdout (messages withheld)"
    assert "reminder withheld: member is in the holdout group of cart_recovery" in texts
    assert texts[-1] == "coupon not sent: frequency cap reached"
    trace_a = await member_trace(store.pool, "a")
    assert [t["type"] for t in trace_a] == [
        "journey.entered",
        "message.sent",
        "journey.converted",
        "journey.exited",
    ]
