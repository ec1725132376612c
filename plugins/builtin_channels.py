"""The built-in channels, registered through the same hook as any third-party plugin (the
`builtin_channels` entry point in Journeyman's own pyproject)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .hookspecs import hookimpl


@hookimpl
def register_channels(register: Callable[[Any], None]) -> None:
    from journeyman.channels.email import EmailChannel
    from journeyman.channels.fcm import FcmChannel
    from journeyman.channels.outbox import OutboxChannel
    from journeyman.channels.sms import SmsChannel
    from journeyman.channels.webhook import WebhookChannel
    from journeyman.channels.webpush import WebPushChannel

    for channel in (
        EmailChannel(),
        SmsChannel(),
        WebPushChannel(),
        FcmChannel(),
        WebhookChannel(),
        OutboxChannel(),
    ):
        register(channel)
