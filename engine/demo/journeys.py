"""The built-in journeys the demo plays, with their delays compressed to the demo's clock."""

from __future__ import annotations

from typing import Any

JOURNEYS = ("cart_recovery", "welcome", "winback", "post_purchase_survey")
FRESHNESS_SECONDS = 3600.0
"""Trigger events older than this start nothing (history); not compressed."""


def journey_overrides(day: float) -> dict[str, dict[str, Any]]:
    """The built-in journeys' delays, in seconds, with one simulated day lasting `day`."""
    return {
        "cart_recovery": {
            "quiet_period": day / 24,
            "coupon_delay": 23 * day / 24,
            "attribution_window": 3 * day,
            "freshness": FRESHNESS_SECONDS,
        },
        "welcome": {
            "tips_after": 3 * day,
            "incentive_after": 7 * day,
            "attribution_window": 7 * day,
            "freshness": FRESHNESS_SECONDS,
        },
        "winback": {"follow_up_delay": 3 * day, "attribution_window": 7 * day},
        "post_purchase_survey": {
            "survey_delay": 2 * day,
            "attribution_window": 7 * day,
            "freshness": FRESHNESS_SECONDS,
        },
    }


SPAN_DAYS = {"cart_recovery": 4.0, "welcome": 14.0, "winback": 10.0, "post_purchase_survey": 9.0}
"""Simulated days from entry to the end of the attribution window (no earlier conversion)."""
