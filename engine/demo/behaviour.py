"""A member behaviour model whose true effect of each message is known.

Used by the demo and by the measurement tests, so that the lift Journeyman *measures* can be
set beside the lift that is *true* by construction.

For each journey a member enters, the model fixes:

* a **base propensity** `b` — the chance they reach the journey's goal (an order) on their
  own within the attribution window, messages or not. It varies between members (a Beta
  uniform spread around the journey's mean), and is a deterministic function of the seed,
  the member and the journey;
* for each message they **actually receive**, an independent chance `uplift[template]` that
  the message persuades them (they click and order shortly after).

So a member who would receive messages `j = 1..k` converts with probability
`1 - (1 - b) * prod(1 - uplift[j])`, and a holdout member (who receives none) with `b`. The
true lift of a journey over a population is the mean of the difference,
`(1 - b) * (1 - prod(1 - uplift[j]))`: `true_lift()` computes it. All draws are
deterministic for (seed, member, journey, delivery), so re-running reproduces the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_UPLIFT: dict[str, float] = {
    "cart_reminder": 0.15,
    "cart_coupon": 0.10,
    "welcome": 0.04,
    "welcome_tips": 0.04,
    "first_order_incentive": 0.08,
    "we_miss_you": 0.10,
    "we_miss_you_follow_up": 0.06,
    "satisfaction_survey": 0.0,
}
"""Chance that one received message persuades the member, by template."""

DEFAULT_BASE: dict[str, float] = {
    "cart_recovery": 0.15,
    "welcome": 0.10,
    "winback": 0.05,
    "post_purchase_survey": 0.0,
}
"""Mean base propensity to convert without any message, by journey."""

PLANNED: dict[str, tuple[str, ...]] = {
    "cart_recovery": ("cart_reminder", "cart_coupon"),
    "welcome": ("welcome", "welcome_tips", "first_order_incentive"),
    "winback": ("we_miss_you", "we_miss_you_follow_up"),
    "post_purchase_survey": ("satisfaction_survey",),
}
"""The messages each built-in journey sends to a member who does not convert first."""


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class BehaviourModel:
    seed: int = 7
    uplift: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_UPLIFT))
    base: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE))
    spread: float = 0.75
    """Members' base propensities are uniform on mean * [1 - spread, 1 + spread]."""
    click_without_order: float = 0.12
    """Chance that a received, unpersuasive message is clicked anyway."""
    survey_click: float = 0.35

    # ------------------------------------------------------------------ per member
    def propensity(self, member_id: str, journey: str) -> float:
        mean = self.base.get(journey, 0.0)
        u = _unit(self.seed, "base", member_id, journey)
        return min(1.0, mean * (1.0 - self.spread + 2.0 * self.spread * u))

    def converts_anyway(self, member_id: str, journey: str, key: str = "") -> bool:
        """Does the member reach the goal on their own (drawn once per entry)?"""
        p = self.propensity(member_id, journey)
        return _unit(self.seed, "spontaneous", member_id, journey, key) < p

    def when_anyway(self, member_id: str, journey: str, key: str = "") -> float:
        """When, as a fraction of the journey's natural span, they convert on their own."""
        return _unit(self.seed, "when", member_id, journey, key)

    def persuaded(self, delivery_id: str, template: str) -> bool:
        """Does this received message persuade its recipient?"""
        return _unit(self.seed, "persuaded", delivery_id) < self.uplift.get(template, 0.0)

    def clicks(self, delivery_id: str, template: str) -> bool:
        """Is this received message clicked? (Persuasive messages always are.)"""
        if template == "satisfaction_survey":
            return _unit(self.seed, "survey", delivery_id) < self.survey_click
        return self.persuaded(delivery_id, template) or (
            _unit(self.seed, "click", delivery_id) < self.click_without_order
        )

    def response_delay(self, delivery_id: str) -> float:
        """Fraction of a day between receiving a message and acting on it."""
        return 0.05 + 0.4 * _unit(self.seed, "delay", delivery_id)

    # ------------------------------------------------------------------ truth
    def conversion_probability(
        self, member_id: str, journey: str, templates: Sequence[str] | None
    ) -> float:
        """P(convert) for a member who receives `templates` (None or empty: no message)."""
        b = self.propensity(member_id, journey)
        stay = 1.0
        for t in templates or ():
            stay *= 1.0 - self.uplift.get(t, 0.0)
        return 1.0 - (1.0 - b) * stay

    def true_lift(
        self, members: Iterable[str], journey: str, templates: Sequence[str] | None = None
    ) -> float:
        """Mean treatment-minus-holdout conversion probability over `members` entering
        `journey`, if every planned message reaches every member who has not converted."""
        planned = PLANNED.get(journey, ()) if templates is None else templates
        diffs = [
            self.conversion_probability(m, journey, planned)
            - self.conversion_probability(m, journey, None)
            for m in members
        ]
        return sum(diffs) / len(diffs) if diffs else 0.0

    def true_lift_of_received(
        self,
        treated: Sequence[str],
        journey: str,
        received: Callable[[str], Sequence[str]],
    ) -> float:
        """Mean treatment-minus-holdout conversion probability of the messages treatment
        members actually received: what a randomised holdout comparison estimates when some
        planned messages were never sent (suppressed, no consent, the member left first)."""
        diffs = [
            self.conversion_probability(m, journey, received(m))
            - self.conversion_probability(m, journey, None)
            for m in treated
        ]
        return sum(diffs) / len(diffs) if diffs else 0.0
