"""What went wrong with a send, and whether the message may have left.

Every error a channel raises from `send` is a `ChannelError`. The class answers the only
question the caller has to act on — *was it sent?* — and, for permanent failures, what to do
about the member or the channel::

    ChannelError                      base class; never raised itself
    ├── TransientError                NOT accepted. Safe to retry, after `retry_after`
    │                                 seconds when the provider said so (connect errors,
    │                                 HTTP 429, SMTP 4xx before the end of DATA, an OAuth
    │                                 token that could not be fetched).
    ├── AmbiguousError                MAY have been accepted. Never retry blindly: reconcile
    │                                 with the provider, or record the delivery as in doubt
    │                                 (read timeout or HTTP 5xx after a POST was written,
    │                                 a disconnect after the SMTP message body was sent).
    ├── PermanentError                NOT accepted, and retrying will not help.
        ├── RecipientInvalid          the address/number/token is not deliverable:
        │                             suppress the contact point (SMTP 550, Twilio 21211).
        ├── RecipientGone             the push subscription or token no longer exists:
        │                             drop it (Web Push 404/410, FCM UNREGISTERED).
        ├── RecipientUnsubscribed     the provider knows the member opted out:
        │                             turn consent off for the channel (Twilio 21610).
        ├── ContentRejected           the provider refused this message's content
        │                             (SMTP 554 at end of DATA, an oversized push).
        └── ChannelMisconfigured      credentials, sender or endpoint are wrong, or the
                                      channel has no configuration: pause the channel and
                                      alert an operator; the member is not to blame.
    └── ReconcileUnsupported          raised by `Channel.reconcile` (never by `send`): the
                                      provider offers no lookup, so an ambiguous send
                                      stays in doubt.

Channels never retry inside `send`: SDK and HTTP-client retries stay off, so one call is at
most one attempt at the provider and every retry is the caller's (Temporal's) decision.

Each class carries two flags that make the policy explicit for code that handles errors
generically: `retryable` (may the caller try again?) and `may_have_been_sent`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AmbiguousError",
    "ChannelError",
    "ChannelMisconfigured",
    "ContentRejected",
    "PermanentError",
    "RecipientGone",
    "RecipientInvalid",
    "RecipientUnsubscribed",
    "ReconcileUnsupported",
    "TransientError",
]


class ChannelError(Exception):
    """Base class of every error raised by a channel's `send`.

    `channel` names the channel, `code` is the provider's own error code when it gave one
    (an SMTP reply code, a Twilio error code, an FCM error status), `status` the HTTP status
    when there was one, and `retry_after` the seconds the provider asked us to wait.
    """

    retryable: ClassVar[bool] = False
    may_have_been_sent: ClassVar[bool] = False
    action: ClassVar[str] = "fail"

    def __init__(
        self,
        message: str,
        *,
        channel: str | None = None,
        code: str | int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.channel = channel
        self.code = code
        self.status = status
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments survive pickling (process pools, Temporal failure details).
        return (_rebuild, (type(self), self.message, self._details()))

    def _details(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "code": self.code,
            "status": self.status,
            "retry_after": self.retry_after,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (error type, message, flags and provider details)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "retryable": self.retryable,
            "may_have_been_sent": self.may_have_been_sent,
            "action": self.action,
            **self._details(),
        }


def _rebuild(cls: type[ChannelError], message: str, details: dict[str, Any]) -> ChannelError:
    return cls(message, **details)


class TransientError(ChannelError):
    """The provider certainly did not accept the message; retry, honouring `retry_after`."""

    retryable = True
    action = "retry"


class AmbiguousError(ChannelError):
    """The message may have been accepted; reconcile or record it as in doubt, never resend
    blindly."""

    may_have_been_sent = True
    action = "reconcile"


class PermanentError(ChannelError):
    """The provider refused the message and will refuse it again; do not retry."""

    action = "fail"


class RecipientInvalid(PermanentError):
    """The contact point cannot receive messages: suppress it."""

    action = "suppress"


class RecipientGone(PermanentError):
    """The push subscription or device token no longer exists: drop it."""

    action = "drop_contact"


class RecipientUnsubscribed(PermanentError):
    """The provider reports that the member opted out: turn consent off for this channel."""

    action = "consent_off"


class ContentRejected(PermanentError):
    """The provider refused this message's content (size, policy, format)."""

    action = "fail"


class ChannelMisconfigured(PermanentError):
    """The channel's configuration is missing or wrong: pause the channel and alert an
    operator. The member is not to blame."""

    action = "pause_channel"


class ReconcileUnsupported(ChannelError):
    """The channel cannot ask its provider whether a message was accepted (SMTP has no
    lookup): a send that ended ambiguously stays in doubt. Raised by the default
    `Channel.reconcile`."""

    may_have_been_sent = True
    action = "in_doubt"
