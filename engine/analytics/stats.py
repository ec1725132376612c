"""Interval estimates for lift: the difference of two conversion rates and of two means.

The rate difference uses Newcombe's hybrid score interval (method 10 in Newcombe, 1998),
built from Wilson intervals of each rate: unlike the plain Wald interval it keeps close to
its nominal coverage with small groups and rates near 0, which is where holdout groups live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | bool]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "significant": self.significant,
        }


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> Interval:
    """Rate of group 1 minus rate of group 2, with a 95% interval (Newcombe hybrid score)."""
    if n1 == 0 or n2 == 0:
        return Interval(0.0, -1.0, 1.0)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high))


def mean_difference(
    n1: int, sum1: float, sumsq1: float, n2: int, sum2: float, sumsq2: float, z: float = Z95
) -> Interval:
    """Mean of group 1 minus mean of group 2 (e.g. revenue per member), Welch normal interval."""
    if n1 < 2 or n2 < 2:
        m1 = sum1 / n1 if n1 else 0.0
        m2 = sum2 / n2 if n2 else 0.0
        return Interval(m1 - m2, -math.inf, math.inf)
    m1, m2 = sum1 / n1, sum2 / n2
    v1 = max(0.0, (sumsq1 - n1 * m1 * m1) / (n1 - 1))
    v2 = max(0.0, (sumsq2 - n2 * m2 * m2) / (n2 - 1))
    se = math.sqrt(v1 / n1 + v2 / n2)
    d = m1 - m2
    return Interval(d, d - z * se, d + z * se)
