"""`retry_lost_races`: the one retry policy for transactions that lost a race."""

from __future__ import annotations

import asyncpg
import pytest
from journeyman.event_store import StaleTransactionError
from journeyman.event_store.retry import retry_lost_races


async def test_a_lost_race_is_run_again_until_it_wins() -> None:
    calls: list[int] = []
    retried: list[str] = []

    async def run() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StaleTransactionError("moved on")
        return "done"

    result = await retry_lost_races(
        run, on=StaleTransactionError, retried=lambda e: retried.append(type(e).__name__)
    )
    assert result == "done" and len(calls) == 3
    assert retried == ["StaleTransactionError", "StaleTransactionError"]


async def test_the_last_error_is_raised_after_the_attempts() -> None:
    calls: list[int] = []

    async def run() -> None:
        calls.append(1)
        raise asyncpg.DeadlockDetectedError(f"deadlock {len(calls)}")

    with pytest.raises(asyncpg.DeadlockDetectedError, match="deadlock 4"):
        await retry_lost_races(run, on=(asyncpg.DeadlockDetectedError,), attempts=4)
    assert len(calls) == 4


async def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def run() -> None:
        calls.append(1)
        raise ValueError("a bug, not a race")

    with pytest.raises(ValueError):
        await retry_lost_races(run, on=StaleTransactionError)
    assert calls == [1]


async def test_a_callable_returning_a_coroutine_is_awaited() -> None:
    async def work(n: int) -> int:
        return n * 2

    assert await retry_lost_races(lambda: work(21), on=StaleTransactionError) == 42
