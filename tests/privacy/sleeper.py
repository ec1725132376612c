"""A journey-shaped workflow that sleeps for a month (for erasure tests)."""

from __future__ import annotations

import datetime as dt

from temporalio import workflow


@workflow.defn(name="privacy_test_sleeper")
class Sleeper:
    @workflow.run
    async def run(self, member_id: str) -> str:
        await workflow.sleep(dt.timedelta(days=30))
        return member_id


@workflow.defn(name="privacy_test_echo")
class Echo:
    @workflow.run
    async def run(self, data: dict[str, str]) -> dict[str, str]:
        return data
