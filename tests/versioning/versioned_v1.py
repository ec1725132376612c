"""Build v1 of a PINNED journey for the worker versioning test: hello, a pause, goodbye."""

from __future__ import annotations

import datetime as dt

from journeyman.workflows.kit import Journey, journey
from journeyman.workflows.spec import JourneySettings, on_event, seconds
from pydantic import Field
from temporalio.common import VersioningBehavior

NAME = "versioned_hello"


class HelloSettings(JourneySettings):
    pause: dt.timedelta = Field(default=seconds(3), description="Between hello and goodbye.")
    channels: list[str] = Field(default_factory=lambda: ["outbox"])


@journey(
    NAME,
    trigger=on_event("member.registered"),
    settings=HelloSettings,
    versioning_behavior=VersioningBehavior.PINNED,
)
class HelloV1(Journey):
    settings: HelloSettings

    async def steps(self) -> None:
        await self.send(None, "hello", step="hello")
        await self.sleep(self.settings.pause, step="pause")
        await self.send(None, "goodbye", step="goodbye")
