"""Time to convert is measured from the send and never negative: a conversion recorded for a
goal that occurred before its message (as journeys did for late-arriving orders) is left out."""

from __future__ import annotations

import datetime as dt

from journeyman.engine.analytics.report import journey_stats
from journeyman.event_store import NewEvent, PostgresEventStore

T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


async def _entry(store: PostgresEventStore, entry_id: str, converted_after: dt.timedelta) -> None:
    base = {"journey": "cart_recovery", "entry_id": entry_id, "workflow_id": f"wf-{entry_id}"}
    did, at = f"d-{entry_id}", T0 + converted_after
    await store.append(
        f"member-{entry_id}",
        [
            NewEvent(
                "journey.entered",
                {**base, "variant": "control", "holdout": False},
                event_id=f"{entry_id}-in",
                occurred_at=T0 - dt.timedelta(hours=1),
            ),
            NewEvent(
                "message.sent",
                {
                    **base,
                    "delivery_id": did,
                    "channel": "email",
                    "step": "reminder",
                    "variant": "control",
                },
                event_id=f"{did}-sent",
                occurred_at=T0,
            ),
            NewEvent(
                "journey.converted",
                {
                    **base,
                    "goal": "order.placed",
                    "variant": "control",
                    "holdout": False,
                    "value": 1,
                    "at": at.isoformat(),
                    "delivery_id": did,
                    "step": "reminder",
                },
                event_id=f"{entry_id}-cv",
                occurred_at=at,
            ),
        ],
    )


async def test_time_to_convert_leaves_out_goals_from_before_the_send(
    store: PostgresEventStore,
) -> None:
    await _entry(store, "a", dt.timedelta(hours=2))
    await _entry(store, "b", -dt.timedelta(minutes=30))  # the order came before the message
    (stats,) = await journey_stats(store.pool)
    assert stats.time_to_convert_s["n"] == 1
    assert stats.time_to_convert_s["p25"] == 7200.0
