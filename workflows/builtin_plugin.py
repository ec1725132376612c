"""The built-in journeys and segments, registered through the same hooks a third-party
package uses."""

from __future__ import annotations

from collections.abc import Callable

from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.segments import Segment
from journeyman.plugins import hookimpl


def _is_vip(p: MemberProfile) -> bool:
    return (
        (p.recency_score or 0) >= 4
        and (p.frequency_score or 0) >= 4
        and (p.monetary_score or 0) >= 4
    )


def _is_lapsed_vip(p: MemberProfile) -> bool:
    return (
        (p.frequency_score or 0) >= 4
        and (p.monetary_score or 0) >= 4
        and (p.recency_score or 5) <= 2
    )


VIP = Segment(
    "vip",
    when=_is_vip,
    description="Best customers: RFM recency, frequency and monetary scores all 4 or 5 (with "
    "the default thresholds: ordered in the last 30 days, 5+ orders, 500+ spent).",
)
LAPSED_VIP = Segment(
    "lapsed_vip",
    when=_is_lapsed_vip,
    description="Former best customers gone quiet: frequency and monetary scores 4 or 5, "
    "recency 2 or less (with the default thresholds: 5+ orders, 500+ spent, no order for 90 "
    "days). Members enter with time alone, at the hourly refresh.",
)


@hookimpl
def register_journeys(register: Callable[[type], None]) -> None:
    from .cart_recovery import CartRecovery
    from .double_opt_in import DoubleOptIn
    from .post_purchase import PostPurchaseSurvey
    from .welcome import Welcome
    from .winback import Winback

    for cls in (CartRecovery, Winback, Welcome, PostPurchaseSurvey, DoubleOptIn):
        register(cls)


@hookimpl
def register_segments(register: Callable[[Segment], None]) -> None:
    register(VIP)
    register(LAPSED_VIP)
