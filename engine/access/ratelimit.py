"""Token buckets: a per-key request rate limit, in memory, per process.

Each key (an API key id, or a client address for unauthenticated calls) has a bucket of
`burst` tokens that refills at `rate` tokens per second; a request takes one token (a batch
may take one per event). A request that finds too few tokens is refused with the number of
seconds until enough have refilled, which the API sends as `Retry-After`.

The buckets live in the process: with N API processes behind a load balancer a key can get
up to N times the rate. That is the documented trade-off (no shared state, no extra round
trip per request); put a shared limiter in front of the API if the bound must be global.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key. Not thread-safe; one event loop per instance."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens from `key`'s bucket: 0.0 if allowed, else the seconds to wait
        before the same request would be allowed (nothing is taken then)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        cost = min(cost, self.burst)  # a request larger than the burst waits for a full bucket
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def retry_after(self, wait: float) -> int:
        """`Retry-After` header value (whole seconds, at least 1) for a wait."""
        return max(1, math.ceil(wait))

    def _evict(self, now: float) -> None:
        """Drop buckets that are full again (idle keys): they carry no state."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()
