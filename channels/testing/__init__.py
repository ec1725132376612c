"""Testing kit for channel authors: the shipped `ChannelContract` suite and, in
`journeyman.channels.testing.peers`, real protocol peers (SMTP, Twilio, Web Push, FCM, webhooks)
that run on 127.0.0.1. Needs the `dev` extra (pytest, aiosmtpd, http-ece)."""

from .contract import ChannelContract, ChannelHarness

__all__ = ["ChannelContract", "ChannelHarness"]
