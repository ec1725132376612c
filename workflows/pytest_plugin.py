"""The `journeyman` pytest plugin (loaded by pytest through the `pytest11` entry point):
the `journey_harness` fixture.

    async def test_welcome(journey_harness):
        h = await journey_harness([Welcome])
        run = await h.begin(Welcome, trigger="member.registered")
        ...

Each call starts a `JourneyHarness` (a time-skipping Temporal test server and a worker with
recording fakes) that is shut down after the test. Needs pytest-asyncio; without it the
fixture is not defined and nothing else changes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the fixture needs an asyncio test runner
    pytest_asyncio = None

if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def journey_harness() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
        from .testing import JourneyHarness

        async with contextlib.AsyncExitStack() as stack:

            async def start(journeys: Sequence[type], **options: Any) -> JourneyHarness:
                return await stack.enter_async_context(JourneyHarness.start(journeys, **options))

            yield start
