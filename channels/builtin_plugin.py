"""The built-in channels, registered through the same hook as any third-party plugin (the
`builtin_channels` entry point in Journeyman's own pyproject)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from journeyman.plugins import hookimpl


@hookimpl
def register_channels(register: Callable[[Any], None]) -> None:
    from .email import EmailChannel
    from .fcm import FcmChannel
    from .outbox import OutboxChannel
    from .sms import SmsChannel
    from .webhook import WebhookChannel
    from .webpush import WebPushChannel

    for channel in (
        EmailChannel(),
        SmsChannel(),
        WebPushChannel(),
        FcmChannel(),
        WebhookChannel(),
        OutboxChannel(),
    ):
        register(channel)
