"""An inactivity journey that a member may enter once only (a module of its own: journeys
must be importable for the worker's sandbox)."""

from __future__ import annotations

from journeyman.workflows import Journey, Reentry, inactivity, journey, seconds


@journey(
    "once_only_winback_test",
    trigger=inactivity(days=30),
    reentry=Reentry.never(),
    description="Win a quiet member back, once in their lifetime.",
)
class OnceOnlyWinback(Journey):
    async def steps(self) -> None:
        await self.sleep(seconds(60))
