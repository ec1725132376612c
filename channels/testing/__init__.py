"""Testing kit for channel authors: the shipped `ChannelContract` suite (a pytest class:
importing it needs pytest), the `ChannelHarness` it runs against, and, in
`journeyman.channels.testing.peers`, real protocol peers (SMTP, Twilio, Web Push, FCM,
webhooks) that run on 127.0.0.1. This package and the peers import without pytest; the SMTP
and Web Push peers need aiosmtpd and http-ece (the `dev` extra)."""

from __future__ import annotations

from typing import Any

from .harness import ChannelHarness

__all__ = ["ChannelContract", "ChannelHarness"]


def __getattr__(name: str) -> Any:
    # Lazy: the contract suite is pytest code; the harness and the peers are not.
    if name == "ChannelContract":
        from .contract import ChannelContract

        return ChannelContract
    raise AttributeError(name)
