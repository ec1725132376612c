"""The built-in journeys, registered through the same hook a third-party package uses."""

from __future__ import annotations

from collections.abc import Callable

from plugins import hookimpl


@hookimpl
def register_journeys(register: Callable[[type], None]) -> None:
    from .cart_recovery import CartRecovery
    from .double_opt_in import DoubleOptIn
    from .post_purchase import PostPurchaseSurvey
    from .welcome import Welcome
    from .winback import Winback

    for cls in (CartRecovery, Winback, Welcome, PostPurchaseSurvey, DoubleOptIn):
        register(cls)
