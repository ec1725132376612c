"""Does the reported lift tell the truth? Over many seeds of the behaviour model, with a known
uplift the 95% interval Journeyman reports covers the true lift in about 95% of runs, and
with no effect at all it reports a significant lift in no more than about 5% of runs.

Each run draws a population, assigns a holdout at random, draws every member's outcome from
the model, and measures lift through `journeyman.engine.analytics.JourneyStats` — the same code that
serves the API, the CLI report and the dashboard.
"""

from __future__ import annotations

import random

from journeyman.engine.analytics.report import Funnel, JourneyStats
from journeyman.engine.demo.behaviour import DEFAULT_UPLIFT, PLANNED, BehaviourModel

RUNS = 500
MEMBERS = 600
HOLDOUT = 0.2
JOURNEY = "cart_recovery"


def one_run(seed: int, uplift_scale: float) -> tuple[JourneyStats, float]:
    model = BehaviourModel(
        seed=seed, uplift={t: u * uplift_scale for t, u in DEFAULT_UPLIFT.items()}
    )
    rng = random.Random(seed)
    stats = JourneyStats(JOURNEY)
    treatment, holdout = Funnel(), Funnel()
    members = [f"s{seed}-m{i}" for i in range(MEMBERS)]
    for m in members:
        in_holdout = rng.random() < HOLDOUT
        p = model.conversion_probability(m, JOURNEY, None if in_holdout else PLANNED[JOURNEY])
        group = holdout if in_holdout else treatment
        group.entered += 1
        if rng.random() < p:
            group.converted += 1
    stats.variants["control"] = treatment
    stats.holdout = holdout
    return stats, model.true_lift(members, JOURNEY)


def test_interval_covers_the_true_lift_in_about_95_percent_of_runs() -> None:
    covered = significant = 0
    truths = []
    for seed in range(RUNS):
        stats, truth = one_run(seed, 1.0)
        lift = stats.conversion_lift()
        assert lift is not None
        truths.append(truth)
        covered += lift.low <= truth <= lift.high
        significant += lift.significant
    coverage = covered / RUNS
    # 500 runs: the standard error of a 95% coverage is ~1 point.
    assert 0.92 <= coverage <= 0.985, f"coverage {coverage:.3f}"
    # the effect is real and sizeable (~20 points), so most runs detect it
    assert min(truths) > 0.15
    assert significant / RUNS > 0.8


def test_no_effect_is_rarely_reported_as_significant() -> None:
    false_alarms = 0
    for seed in range(RUNS):
        stats, truth = one_run(10_000 + seed, 0.0)
        assert truth == 0.0
        lift = stats.conversion_lift()
        assert lift is not None
        false_alarms += lift.significant
    rate = false_alarms / RUNS
    assert rate <= 0.075, f"{rate:.3f} of runs with no effect reported a significant lift"


def test_the_model_s_mechanism_matches_its_stated_probability() -> None:
    """Members converting on their own or persuaded by each received message (what the demo
    plays out) convert at the rate `conversion_probability` states."""
    model = BehaviourModel(seed=3)
    members = [f"m{i}" for i in range(20_000)]
    planned = PLANNED[JOURNEY]
    converted = 0
    for m in members:
        if model.converts_anyway(m, JOURNEY):
            converted += 1
            continue
        converted += any(model.persuaded(f"{m}/{t}", t) for t in planned)
    expected = sum(model.conversion_probability(m, JOURNEY, planned) for m in members)
    # binomial standard deviation over 20,000 members is ~60; allow 4 of them
    assert abs(converted - expected) < 4 * (expected * (1 - expected / len(members))) ** 0.5
    held = sum(model.converts_anyway(m, JOURNEY) for m in members)
    base = sum(model.conversion_probability(m, JOURNEY, None) for m in members)
    assert abs(held - base) < 4 * (base * (1 - base / len(members))) ** 0.5
