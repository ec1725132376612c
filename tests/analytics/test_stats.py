"""The lift intervals keep their promise: ~95% coverage, ~5% false positives."""

from __future__ import annotations

import math
import random

import pytest
from journeyman.engine.analytics.stats import mean_difference, rate_difference, wilson


def test_wilson_matches_known_values() -> None:
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-4)
    assert high == pytest.approx(0.1744, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_newcombe_matches_published_example() -> None:
    # Newcombe (1998), example (a): 56/70 vs 48/80 -> 0.2000 (0.0524, 0.3339).
    ci = rate_difference(56, 70, 48, 80)
    assert ci.estimate == pytest.approx(0.2)
    assert ci.low == pytest.approx(0.0524, abs=5e-4)
    assert ci.high == pytest.approx(0.3339, abs=5e-4)
    assert ci.significant


@pytest.mark.parametrize(("p_treat", "p_hold"), [(0.12, 0.08), (0.05, 0.05), (0.3, 0.2)])
def test_rate_interval_covers_true_lift_about_95_percent(p_treat: float, p_hold: float) -> None:
    rng = random.Random(11)
    runs, covered, significant = 1500, 0, 0
    for _ in range(runs):
        n_t, n_h = 900, 100  # a 10% holdout
        x_t = sum(rng.random() < p_treat for _ in range(n_t))
        x_h = sum(rng.random() < p_hold for _ in range(n_h))
        ci = rate_difference(x_t, n_t, x_h, n_h)
        covered += ci.low <= p_treat - p_hold <= ci.high
        significant += ci.significant
    coverage = covered / runs
    assert 0.93 <= coverage <= 0.975, coverage
    if p_treat == p_hold:
        assert significant / runs <= 0.07


def test_mean_difference_covers_true_revenue_lift() -> None:
    rng = random.Random(5)
    runs, covered = 800, 0
    true_diff = 0.15 * 40 - 0.10 * 40
    for _ in range(runs):
        groups = []
        for n, p in ((800, 0.15), (200, 0.10)):
            values = [rng.expovariate(1 / 40) if rng.random() < p else 0.0 for _ in range(n)]
            groups.append((n, sum(values), sum(v * v for v in values)))
        ci = mean_difference(*groups[0], *groups[1])
        covered += ci.low <= true_diff <= ci.high
    assert 0.92 <= covered / runs <= 0.975


def test_degenerate_groups_do_not_crash() -> None:
    assert rate_difference(0, 0, 3, 10).low == -1.0
    assert math.isinf(mean_difference(1, 5.0, 25.0, 10, 10.0, 30.0).high)
