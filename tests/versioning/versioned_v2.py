"""Build v2 of the same journey, changed without a patch: a pause and a teaser before hello.
Replaying a v1 history with this code is a nondeterminism error; pinned runs never do."""

from __future__ import annotations

from journeyman.workflows.kit import Journey, journey
from journeyman.workflows.spec import on_event
from temporalio.common import VersioningBehavior
from versioned_v1 import NAME, HelloSettings


@journey(
    NAME,
    trigger=on_event("member.registered"),
    settings=HelloSettings,
    versioning_behavior=VersioningBehavior.PINNED,
)
class HelloV2(Journey):
    settings: HelloSettings

    async def steps(self) -> None:
        await self.sleep(self.settings.pause / 10, step="warm-up")
        await self.send(None, "teaser", step="teaser")
        await self.send(None, "hello", step="hello")
        await self.sleep(self.settings.pause, step="pause")
        await self.send(None, "goodbye", step="goodbye")
