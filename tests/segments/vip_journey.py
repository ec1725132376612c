"""A journey that starts when a member enters the built-in `vip` segment and ends when they
leave it (a module of its own: the worker's sandbox imports it)."""

from __future__ import annotations

from journeyman.workflows import Exit, Journey, journey, seconds, segment_entry


@journey(
    "vip_thanks_test",
    trigger=segment_entry("vip"),
    exits=[Exit("segment.exited", when=lambda d: d.get("segment") == "vip", reason="not_vip")],
    description="Thank members who became VIPs.",
)
class VipThanks(Journey):
    async def steps(self) -> None:
        await self.sleep(seconds(60))
