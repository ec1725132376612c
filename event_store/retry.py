"""One retry policy for a transaction that lost a race to another one (a deadlock, a
serialization failure, a stream that moved on): run it again, up to a bounded number of
times, after a short, jittered, exponentially growing pause, so that transactions that
collided once do not collide again in step. Built on tenacity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_incrementing,
    wait_random_exponential,
)

T = TypeVar("T")

__all__ = ["retry_lost_races", "retry_unless"]


async def retry_lost_races(
    run: Callable[[], Awaitable[T]],
    *,
    on: type[BaseException] | tuple[type[BaseException], ...],
    attempts: int = 20,
    first: float = 0.002,
    cap: float = 0.05,
    retried: Callable[[BaseException], Any] | None = None,
) -> T:
    """`await run()`, again while it raises one of `on`, at most `attempts` times in all; the
    last error is raised as is. `retried(error)` is called before each pause (metrics)."""

    def before_sleep(state: RetryCallState) -> None:
        if retried is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                retried(error)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(on),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=first, max=cap),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # Awaited here: tenacity awaits only what a coroutine function returns, and `run`
        # may be a plain callable (a lambda) that returns a coroutine.
        return await run()

    return await retrying(attempt)


async def retry_unless(
    run: Callable[[], Awaitable[T]],
    *,
    unless: type[BaseException] | tuple[type[BaseException], ...],
    attempts: int,
    pause: float,
) -> T:
    """`await run()`, again after any error but `unless` (a passing database fault: a dropped
    connection, a failover), at most `attempts` times in all, pausing `pause`, then twice
    that, and so on. `unless` and the last error are raised as they are."""
    retrying = AsyncRetrying(
        retry=retry_if_not_exception_type(unless),
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=pause, increment=pause),
        reraise=True,
    )

    async def attempt() -> T:
        return await run()

    return await retrying(attempt)
