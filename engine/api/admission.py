"""Admission control for ingestion: a bounded number of requests in flight per API process,
a bounded queue behind them, and a fast refusal beyond it.

Without a bound, every request is taken in and waits for a database connection: latency
grows with the number of clients while throughput stays flat, and clients time out on
requests that were in fact stored. With it, a request either gets a slot (at once, or after
a short wait in a first-in first-out queue) or is answered `503` with `Retry-After` without
touching the database, and the client retries later (Segment's and RudderStack's libraries
do so on any 5xx).
"""

from __future__ import annotations

import asyncio
from collections import deque


class AdmissionGate:
    """At most `max_in_flight` holders at once and `max_queued` waiters; `enter` returns
    False at once when the queue is full. Every `enter` that returned True needs `leave`."""

    def __init__(self, max_in_flight: int, max_queued: int) -> None:
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError("max_in_flight must be at least 1 and max_queued at least 0")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def enter(self) -> bool:
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.max_queued:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `leave` hands its slot over: in_flight stays the same
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot arrived with the cancellation: pass it on
            else:
                self._waiters.remove(waiter)
            raise
        return True

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_flight -= 1


__all__ = ["AdmissionGate"]
