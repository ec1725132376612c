"""Journeyman channels: the contract every channel implements, its errors, and (in their own
modules) the built-in channels — `journeyman.channels.email`, `journeyman.channels.sms`,
`journeyman.channels.webpush`,
`journeyman.channels.fcm`, `journeyman.channels.webhook` and `journeyman.channels.outbox`.

The public names are exactly those in `__all__`; a test keeps that list honest.
"""

from .base import (
    Channel,
    ChannelConfig,
    ContactKind,
    DeliveryEvent,
    DeliveryResult,
    Message,
    WebhookRequest,
    route,
    task_queue_for,
)
from .errors import (
    AmbiguousError,
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    RecipientUnsubscribed,
    ReconcileUnsupported,
    TransientError,
)

__all__ = [
    "AmbiguousError",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ChannelMisconfigured",
    "ContactKind",
    "ContentRejected",
    "DeliveryEvent",
    "DeliveryResult",
    "Message",
    "PermanentError",
    "RecipientGone",
    "RecipientInvalid",
    "RecipientUnsubscribed",
    "ReconcileUnsupported",
    "TransientError",
    "WebhookRequest",
    "route",
    "task_queue_for",
]
