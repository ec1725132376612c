"""The channel contract: what a channel is, what it is given, and what it answers.

A channel is an object with a `name`, the `contact` kind it needs, a `rate_limit_per_second`,
a pydantic `Config` model, and one coroutine::

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult

`send` makes at most one attempt at the provider. It returns a `DeliveryResult` when the
provider accepted the message and raises a `journeyman.channels.errors.ChannelError` subclass
otherwise (see that module for what each one means). Channels that receive provider callbacks also
implement `verify_webhook` and `parse_webhook`. Channels whose provider can be asked what it
holds implement `reconcile`, which settles a send that ended ambiguously::

    async def reconcile(self, message: Message, idempotency_key: str) -> DeliveryResult | None

Channels are registered unconfigured (plugins call `register(MyChannel())`); the engine then
calls `configure(values)` with the channel's section of the settings
(`JOURNEYMAN_CHANNELS__<NAME>__<FIELD>`). A channel whose required settings are missing stays
*not configured*: `configured` is false, `not_configured_reason` says what is missing, and
`send` raises `ChannelMisconfigured` without contacting anyone.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ChannelMisconfigured, ReconcileUnsupported

__all__ = [
    "Channel",
    "ChannelConfig",
    "ContactKind",
    "DeliveryEvent",
    "DeliveryResult",
    "Message",
    "WebhookRequest",
    "route",
    "task_queue_for",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ContactKind(enum.StrEnum):
    """The contact point a channel needs in `Message.to`."""

    EMAIL = "email"  # an email address
    PHONE = "phone"  # an E.164 phone number, e.g. +15551234567
    WEB_PUSH = "web_push"  # a Web Push subscription as JSON: {"endpoint", "keys": {...}}
    FCM_TOKEN = "fcm_token"  # a Firebase Cloud Messaging registration token
    MEMBER = "member"  # only the member id: the channel knows where to send
    EXTERNAL = "external"  # the member's id in a named system: see `Channel.contact_system`
    ANY = "any"  # any contact point (the development outbox)


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered message for one member, ready for a channel.

    `to` holds the contact point of the channel's `contact` kind. Text fields are already
    rendered; channels do not template. `delivery_id` is the engine's id of this delivery
    (channels put it where provider callbacks will carry it back, e.g. Twilio's status
    callback URL); `unsubscribe_url` becomes email's List-Unsubscribe header.
    `first_attempt_at` is when the first attempt at this delivery was made: set when the
    engine re-sends or reconciles a delivery, it bounds a provider lookup in time.
    """

    to: str
    text: str = ""
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    delivery_id: str | None = None
    member_id: str | None = None
    unsubscribe_url: str | None = None
    sender: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    first_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The provider accepted the message.

    `provider_message_id` is the provider's id (SMTP Message-ID, Twilio SID, FCM message
    name, …) that later callbacks refer to; `status` is the provider's word for the state
    (usually "accepted" or "queued"); `duplicate` is true when the channel recognised the
    idempotency key and did not send again.
    """

    channel: str
    provider_message_id: str | None
    status: str = "accepted"
    accepted_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duplicate: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "provider_message_id": self.provider_message_id,
            "status": self.status,
            "accepted_at": self.accepted_at.isoformat(),
            "duplicate": self.duplicate,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An incoming provider callback as the HTTP layer received it.

    `url` is the full URL the provider called (scheme, host, path and query), which
    signature schemes such as Twilio's sign over.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def form(self) -> dict[str, str]:
        """The body parsed as `application/x-www-form-urlencoded` (last value wins)."""
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """What a provider callback says about one message.

    `kind` is one of: "accepted", "sent", "delivered", "failed", "bounced", "opened",
    "clicked", "unsubscribed", "inbound" (a reply from the member, e.g. an SMS "STOP").
    """

    kind: str
    channel: str
    provider_message_id: str | None = None
    delivery_id: str | None = None
    occurred_at: datetime | None = None
    error_code: str | None = None
    contact: str | None = None
    text: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class ChannelConfig(BaseModel):
    """Base class of channel config models. Secrets are `SecretStr`: never logged or shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Overrides the channel's declared rate limit (messages per second).",
    )


class Channel:
    """Base class of channels. Subclasses set the class attributes and implement `send`.

    A channel must be constructible with no arguments (that is how plugins register it);
    optional keyword arguments may inject transports for tests.
    """

    name: ClassVar[str]
    contact: ClassVar[ContactKind]
    contact_system: ClassVar[str | None] = None
    """With `contact = ContactKind.EXTERNAL`: the system whose id the channel sends to (a
    chat app's `chat`), read from the member's `external_ids` as ingestion stored them."""
    rate_limit_per_second: ClassVar[float] = 10.0
    Config: ClassVar[type[ChannelConfig]] = ChannelConfig
    description: ClassVar[str] = ""

    def __init__(self, config: ChannelConfig | Mapping[str, Any] | None = None) -> None:
        self._config: ChannelConfig | None = None
        self.not_configured_reason: str | None = "no configuration given"
        if config is not None:
            self.configure(config)
        else:
            self._try_defaults()

    # -- configuration -------------------------------------------------------------------

    def _try_defaults(self) -> None:
        """A channel whose config model has defaults for every field is configured as is."""
        try:
            self._config = self.Config()
            self.not_configured_reason = None
            self._on_configured()
        except ValidationError as exc:
            self._config = None
            self.not_configured_reason = _missing(self.name, exc)

    def configure(self, values: ChannelConfig | Mapping[str, Any]) -> Self:
        """Validate `values` against `Config` and use them.

        Missing required settings leave the channel not configured (with the reason);
        invalid values raise `ChannelMisconfigured` naming the setting.
        """
        if isinstance(values, ChannelConfig):
            if not isinstance(values, self.Config):
                raise TypeError(f"channel {self.name!r} needs a {self.Config.__name__}")
            self._config = values
            self.not_configured_reason = None
            self._on_configured()
            return self
        try:
            self._config = self.Config.model_validate(dict(values))
        except ValidationError as exc:
            self._config = None
            if all(err["type"] == "missing" or not err["loc"] for err in exc.errors()):
                self.not_configured_reason = _missing(self.name, exc)
                return self
            raise ChannelMisconfigured(
                f"channel {self.name!r} has invalid settings: {_describe(self.name, exc)}",
                channel=self.name,
            ) from None
        self.not_configured_reason = None
        self._on_configured()
        return self

    def _on_configured(self) -> None:
        """Called after a new configuration is accepted; subclasses that cache clients
        built from the configuration drop them here (and call `super()._on_configured()`)."""
        assert self._config is not None
        if self._config.rate_limit_per_second is not None:
            self.rate_limit_per_second = self._config.rate_limit_per_second

    @property
    def configured(self) -> bool:
        return self._config is not None

    @property
    def config(self) -> ChannelConfig:
        """The validated configuration; `ChannelMisconfigured` when there is none."""
        if self._config is None:
            raise ChannelMisconfigured(
                f"channel {self.name!r} is not configured: {self.not_configured_reason}",
                channel=self.name,
            )
        return self._config

    # -- the contract --------------------------------------------------------------------

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        """Make one attempt to hand `message` to the provider.

        `idempotency_key` is stable across retries of the same delivery; channels pass it to
        providers that deduplicate (HTTP `Idempotency-Key`) and derive provider ids from it
        (SMTP Message-ID). Raises a `ChannelError` subclass when not accepted.
        """
        raise NotImplementedError

    async def reconcile(self, message: Message, idempotency_key: str) -> DeliveryResult | None:
        """Ask the provider whether it accepted `message` (sent earlier under
        `idempotency_key`, with an ambiguous answer or none at all).

        Returns the `DeliveryResult` (with the provider's message id) when the provider has
        the message, and None when it certainly does not — the engine then sends again under
        the same delivery id and key. Raises `AmbiguousError` or `TransientError` when it
        cannot tell now (the engine asks again later, a bounded number of times). The
        default raises `ReconcileUnsupported`: the delivery stays in doubt.
        """
        raise ReconcileUnsupported(
            f"channel {self.name!r} cannot look up sent messages", channel=self.name
        )

    @property
    def can_reconcile(self) -> bool:
        """Whether the channel implements `reconcile`."""
        return type(self).reconcile is not Channel.reconcile

    async def verify_webhook(self, request: WebhookRequest) -> bool:
        """True when a provider callback carries a valid signature. Default: no webhooks."""
        return False

    async def parse_webhook(self, request: WebhookRequest) -> list[DeliveryEvent]:
        """The delivery events a verified callback reports. Default: none."""
        return []

    async def aclose(self) -> None:
        """Release connections and clients. Safe to call more than once."""

    # -- description ---------------------------------------------------------------------

    @property
    def task_queue(self) -> str:
        return task_queue_for(self.name)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for `journeyman plugins`; secrets are masked."""
        settings: dict[str, Any] | None = None
        if self._config is not None:
            settings = {
                key: ("**********" if isinstance(value, SecretStr) and value else value)
                for key, value in self._config.model_dump(mode="python").items()
            }
            settings = {k: (str(v) if not _jsonable(v) else v) for k, v in settings.items()}
        return {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "contact": str(self.contact),
            "contact_system": self.contact_system,
            "rate_limit_per_second": self.rate_limit_per_second,
            "task_queue": self.task_queue,
            "configured": self.configured,
            "not_configured_reason": self.not_configured_reason,
            "settings": settings,
            "webhooks": type(self).verify_webhook is not Channel.verify_webhook,
            "reconcile": self.can_reconcile,
        }

    def __repr__(self) -> str:
        state = "configured" if self.configured else "not configured"
        return f"<{type(self).__name__} {self.name!r} {state}>"


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _env_name(channel: str, field_name: str) -> str:
    return f"JOURNEYMAN_CHANNELS__{channel.upper()}__{field_name.upper()}"


def _missing(channel: str, exc: ValidationError) -> str:
    names = [_env_name(channel, str(err["loc"][0])) for err in exc.errors() if err["loc"]]
    rules = [
        str(err["msg"]).removeprefix("Value error, ") for err in exc.errors() if not err["loc"]
    ]
    return "; ".join((["missing " + ", ".join(names)] if names else []) + rules)


def _describe(channel: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = _env_name(channel, str(err["loc"][0])) if err["loc"] else channel
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def task_queue_for(name: str, prefix: str = "journeyman") -> str:
    """The Temporal task queue of channel `name`.

    Each channel gets its own queue so that a worker can cap it with
    `max_task_queue_activities_per_second=channel.rate_limit_per_second`, a limit Temporal
    enforces across every worker polling the queue.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a channel name (lowercase letters, digits, _)")
    return f"{prefix}-channel-{name}"


def route(channels: Mapping[str, Channel], name: str, *, fallback: str | None = None) -> Channel:
    """The channel to send through for `name`.

    A configured channel is used as is. A channel that is not configured is replaced by the
    `fallback` channel (the engine passes "outbox" in development, nothing in production);
    without a fallback it is an error. An unknown name is always an error.
    """
    channel = channels.get(name)
    if channel is None:
        known = ", ".join(sorted(channels)) or "none"
        raise ChannelMisconfigured(
            f"no channel named {name!r} is registered (registered: {known})", channel=name
        )
    if channel.configured:
        return channel
    if fallback is not None and fallback != name:
        substitute = channels.get(fallback)
        if substitute is not None and substitute.configured:
            return substitute
    raise ChannelMisconfigured(
        f"channel {name!r} is not configured: {channel.not_configured_reason}", channel=name
    )
