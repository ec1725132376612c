"""What the contract suite needs to exercise one channel against its peer (no pytest needed:
a plugin's own runtime code and tests can build one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from journeyman.channels.base import Channel, DeliveryResult, Message, WebhookRequest
from journeyman.channels.errors import (
    AmbiguousError,
    ChannelError,
    ContentRejected,
    PermanentError,
    RecipientInvalid,
)

__all__ = ["ChannelHarness"]


@dataclass
class ChannelHarness:
    """What the contract suite needs to exercise one channel against its peer.

    `attempts` counts requests (or SMTP transactions) the peer received, failed or not;
    `accepted` counts messages it accepted. `fail_transient(n)` makes the next `n` attempts
    fail in a way that certainly did not deliver (HTTP 429, SMTP 451);
    `fail_after_send(n)` makes them fail after the request was received (HTTP 5xx, a
    dropped SMTP connection after DATA) and `after_send_error` says which error the channel
    reports for that. `invalid_recipient` is a message the provider refuses for its
    recipient; `bad_credentials` a channel configured with wrong credentials; `unreachable`
    one configured to talk to a closed port; `secrets` are the secret values in the
    channel's config, which must never show.

    `rate_limited(n, seconds)` makes the next `n` attempts answer "slow down" with a
    Retry-After of `seconds`; `drop_connection(n)` makes the peer read the next `n` requests
    and then break the connection unanswered; `reject_content(n)` makes it refuse the next
    `n` messages for their content (`rejected_content_error` says with which error).
    `signed_webhook(result, message)` returns the callback the provider would send about a
    message it accepted (a delivery receipt), signed as the provider signs it.
    """

    channel: Channel
    make_message: Callable[[], Message]
    attempts: Callable[[], int]
    accepted: Callable[[], int]
    fail_transient: Callable[[int], None] | None = None
    fail_after_send: Callable[[int], None] | None = None
    after_send_error: type[ChannelError] = AmbiguousError
    invalid_recipient: Message | None = None
    invalid_recipient_error: type[PermanentError] = RecipientInvalid
    bad_credentials: Channel | None = None
    unreachable: Channel | None = None
    secrets: Sequence[str] = field(default_factory=tuple)
    rate_limited: Callable[[int, int], None] | None = None
    drop_connection: Callable[[int], None] | None = None
    reject_content: Callable[[int], None] | None = None
    rejected_content_error: type[PermanentError] = ContentRejected
    signed_webhook: (
        Callable[[DeliveryResult, Message], WebhookRequest | Awaitable[WebhookRequest]] | None
    ) = None
