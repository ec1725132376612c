"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

pywebpush encrypts the payload for the subscription's keys and py_vapid signs the VAPID JWT;
the request itself goes out over httpx, once, with an injectable transport. Two pywebpush
habits are avoided on purpose: its default `TTL: 0` (a message for a device that is offline
right now is silently dropped) — `TTL` is always set, from settings — and its mutation of the
`vapid_claims` dict it is given — the claims are built fresh for every send.

`Message.to` is the subscription as the browser's `PushSubscription.toJSON()` gives it:
`{"endpoint": …, "keys": {"p256dh": …, "auth": …}}`. The payload is JSON with `title`,
`body` (the message text) and `data`.

Answers: 201/202 accepted; 404 or 410 → `RecipientGone` (drop the subscription); 429 →
`TransientError`; 413 → `ContentRejected`; 401/403 → `ChannelMisconfigured` (VAPID keys);
5xx → `AmbiguousError`; other 4xx → `PermanentError`.

Settings (`JOURNEYMAN_CHANNELS__WEBPUSH__…`): VAPID_PRIVATE_KEY (PEM, or base64url of the raw
or DER key) and VAPID_SUBJECT (`mailto:` or `https:`) are required; TTL (seconds, default one
day), URGENCY and TIMEOUT are optional.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from py_vapid import Vapid
from pydantic import Field, SecretStr, field_validator
from pywebpush import WebPusher, WebPushException

from . import _http
from .base import Channel, ChannelConfig, ContactKind, DeliveryResult, Message
from .errors import (
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    TransientError,
)

__all__ = ["WebPushChannel", "WebPushConfig", "load_vapid_key"]


class WebPushConfig(ChannelConfig):
    vapid_private_key: SecretStr = Field(description="The application server's private key.")
    vapid_subject: str = Field(description="Contact for the push service: mailto: or https:.")
    ttl: int = Field(
        default=86400, ge=0, description="Seconds the push service keeps an undelivered message."
    )
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not value.startswith(("mailto:", "https:")):
            raise ValueError("must start with mailto: or https:")
        return value


def load_vapid_key(key: str) -> Vapid:
    """A py_vapid key from PEM or from base64url (raw 32 bytes or DER)."""
    key = key.strip()
    if "BEGIN" in key:
        return Vapid.from_pem(key.encode())
    return Vapid.from_string(key)


class WebPushChannel(Channel):
    name: ClassVar[str] = "webpush"
    contact: ClassVar[ContactKind] = ContactKind.WEB_PUSH
    rate_limit_per_second: ClassVar[float] = 50.0
    Config = WebPushConfig
    description = "Browser push over the Web Push protocol with VAPID (pywebpush)."

    def __init__(
        self,
        config: WebPushConfig | dict[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._vapid: Vapid | None = None
        super().__init__(config)

    def _on_configured(self) -> None:
        super()._on_configured()
        self._client = None
        self._vapid = None

    def _key(self, config: WebPushConfig) -> Vapid:
        if self._vapid is None:
            try:
                self._vapid = load_vapid_key(config.vapid_private_key.get_secret_value())
            except Exception as exc:
                raise ChannelMisconfigured(
                    "webpush: JOURNEYMAN_CHANNELS__WEBPUSH__VAPID_PRIVATE_KEY is not a usable "
                    f"EC P-256 private key ({type(exc).__name__})",
                    channel=self.name,
                ) from None
        return self._vapid

    @staticmethod
    def payload(message: Message) -> bytes:
        return json.dumps(
            {
                "title": message.title or message.subject,
                "body": message.text,
                "data": dict(message.data),
            },
            separators=(",", ":"),
        ).encode()

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, WebPushConfig)
        vapid = self._key(config)
        try:
            subscription = json.loads(message.to)
            pusher = WebPusher(subscription)
            endpoint = str(subscription["endpoint"])
            encrypted = pusher.encode(self.payload(message), "aes128gcm")["body"]
        except (ValueError, KeyError, TypeError, WebPushException) as exc:
            raise RecipientInvalid(
                f"webpush: the push subscription is not usable ({exc})", channel=self.name
            ) from None
        origin = urlsplit(endpoint)
        claims = {  # a fresh dict per send: signing must never see a previous send's claims
            "sub": config.vapid_subject,
            "aud": f"{origin.scheme}://{origin.netloc}",
            "exp": int(time.time()) + 12 * 3600,
        }
        headers = {
            **vapid.sign(claims),
            "TTL": str(config.ttl),
            "Urgency": config.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        topic = message.metadata.get("topic")
        if topic:
            headers["Topic"] = topic
        if self._client is None:
            self._client = _http.make_client(self._transport, config.timeout)
        response = await _http.post(
            self._client,
            endpoint,
            channel=self.name,
            what=f"the push service at {origin.netloc}",
            content=encrypted,
            headers=headers,
        )
        if response.status_code in (200, 201, 202):
            return DeliveryResult(
                channel=self.name,
                provider_message_id=response.headers.get("location"),
                status="accepted",
                detail={"ttl": config.ttl, "http_status": response.status_code},
            )
        raise self._error(response, origin.netloc)

    def _error(self, response: httpx.Response, where: str) -> ChannelError:
        status = response.status_code
        said = f"webpush: the push service at {where} answered {status}"
        kw: dict[str, Any] = {"channel": self.name, "status": status}
        if status in (404, 410):
            return RecipientGone(f"{said}; the subscription has expired or was removed", **kw)
        if status == 429:
            return TransientError(
                f"{said}; rate limited, retry later",
                retry_after=_http.retry_after(response.headers),
                **kw,
            )
        if status >= 500:
            return _http.server_error(self.name, f"the push service at {where}", response)
        if status == 413:
            return ContentRejected(f"{said}; the payload is too large", **kw)
        if status in (401, 403):
            return ChannelMisconfigured(f"{said}; the VAPID key or subject was refused", **kw)
        return PermanentError(f"{said}: {response.text[:200]}", **kw)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
