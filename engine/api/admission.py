"""Admission control for ingestion: a bounded number of requests in flight per API process,
a bounded queue behind them, and a fast refusal beyond it.

Without a bound, every request is taken in and waits for a database connection: latency
grows with the number of clients while throughput stays flat, and clients time out on
requests that were in fact stored. With it, a request either gets a slot (at once, or after
a short wait in a first-in first-out queue, bounded in length and in time) or is answered
`503` with `Retry-After` without touching the database, and the client retries later
(Segment's and RudderStack's libraries do so on any 5xx).
"""

from __future__ import annotations

import asyncio
from collections import deque


class AdmissionGate:
    """At most `max_in_flight` holders at once and `max_queued` waiters. `enter` returns
    False at once when the queue is full, or after `max_wait` seconds in the queue without a
    slot (None: no limit). Every `enter` that returned True needs one `leave`."""

    def __init__(self, max_in_flight: int, max_queued: int, max_wait: float | None = None) -> None:
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError("max_in_flight must be at least 1 and max_queued at least 0")
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.max_wait = max_wait
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def enter(self) -> bool:
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            return True
        if len(self._waiters) >= self.max_queued:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        expiry = loop.call_later(self.max_wait, self._expire, waiter) if self.max_wait else None
        try:
            # True: `leave` handed its slot over (in_flight stays the same); False: expired.
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.leave()  # the slot arrived with the cancellation: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    def _expire(self, waiter: asyncio.Future[bool]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self.in_flight -= 1


__all__ = ["AdmissionGate"]
