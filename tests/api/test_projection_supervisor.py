"""The API keeps its projections running: a failure is logged and the projection started
again after a pause; cancelling the API's task ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from journeyman.engine.api.app import _project_forever


class Flaky:
    """Fails twice, then runs until cancelled."""

    def __init__(self) -> None:
        self.starts = 0
        self.running = asyncio.Event()

    async def run_forever(self) -> None:
        self.starts += 1
        if self.starts <= 2:
            raise RuntimeError(f"failure {self.starts}")
        self.running.set()
        await asyncio.Event().wait()


async def test_a_failed_projection_is_started_again_and_cancelled_cleanly(caplog) -> None:  # type: ignore[no-untyped-def]
    flaky = Flaky()
    with caplog.at_level(logging.ERROR, logger="journeyman.engine.api.app"):
        task = asyncio.create_task(_project_forever(flaky))  # type: ignore[arg-type]
        await asyncio.wait_for(flaky.running.wait(), timeout=10)
    assert flaky.starts == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Flaky failed; retrying in 0.5 s", "Flaky failed; retrying in 1.0 s"]
    assert all(r.exc_info for r in caplog.records)  # the traceback is logged
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
