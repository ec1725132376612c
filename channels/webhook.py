"""A signed webhook: each message is POSTed as JSON to one configured URL.

The receiver can trust it came from us: the request carries

    X-Journeyman-Timestamp: <unix seconds>
    X-Journeyman-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
    Idempotency-Key: <the delivery's idempotency key>

`verify_signature()` is the receiver's side of it (with a tolerance against replays).

Answers: 2xx accepted; 408, 425 and 429 → `TransientError` (Retry-After honoured); 5xx →
`AmbiguousError`; 401/403/404 → `ChannelMisconfigured`; 410 → `RecipientGone`; other 4xx →
`ContentRejected`. Connect failures are transient; a broken connection after the request was
written is ambiguous.

Settings (`JOURNEYMAN_CHANNELS__WEBHOOK__…`): URL and SECRET are required; TIMEOUT optional.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from . import _http
from .base import Channel, ChannelConfig, ContactKind, DeliveryResult, Message
from .errors import (
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    RecipientGone,
    TransientError,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "WebhookConfig",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Journeyman-Signature"
TIMESTAMP_HEADER = "X-Journeyman-Timestamp"


def sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when `signature` signs `body` at `timestamp`, within `tolerance` seconds of now."""
    if not timestamp or not signature:
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    expected = sign(secret, sent_at, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))


class WebhookConfig(ChannelConfig):
    url: str = Field(description="The endpoint that receives messages.")
    secret: SecretStr = Field(description="Shared secret for the HMAC-SHA256 signature.")
    timeout: float = Field(default=10.0, gt=0)


class WebhookChannel(Channel):
    name: ClassVar[str] = "webhook"
    contact: ClassVar[ContactKind] = ContactKind.MEMBER
    rate_limit_per_second: ClassVar[float] = 50.0
    Config = WebhookConfig
    description = "POSTs each message as signed JSON to a configured URL."

    def __init__(
        self,
        config: WebhookConfig | dict[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        super().__init__(config)

    def _on_configured(self) -> None:
        super()._on_configured()
        self._client = None

    def payload(self, message: Message, idempotency_key: str) -> dict[str, Any]:
        return {
            "idempotency_key": idempotency_key,
            "delivery_id": message.delivery_id,
            "member_id": message.member_id,
            "to": message.to,
            "subject": message.subject,
            "title": message.title,
            "text": message.text,
            "html": message.html,
            "data": dict(message.data),
            "metadata": dict(message.metadata),
        }

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, WebhookConfig)
        if self._client is None:
            self._client = _http.make_client(self._transport, config.timeout)
        body = json.dumps(self.payload(message, idempotency_key), sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(config.secret.get_secret_value(), timestamp, body),
        }
        response = await _http.post(
            self._client,
            config.url,
            channel=self.name,
            what=f"the webhook endpoint {config.url}",
            content=body,
            headers=headers,
        )
        if response.is_success:
            provider_id = None
            try:
                answer = response.json()
                if isinstance(answer, dict):
                    provider_id = answer.get("id")
            except ValueError:
                pass
            return DeliveryResult(
                channel=self.name,
                provider_message_id=str(provider_id) if provider_id is not None else None,
                status="accepted",
                detail={"http_status": response.status_code},
            )
        raise self._error(response, config.url)

    def _error(self, response: httpx.Response, url: str) -> ChannelError:
        status = response.status_code
        said = f"webhook: {url} answered {status}"
        kw: dict[str, Any] = {"channel": self.name, "status": status}
        if status in (408, 425, 429):
            return TransientError(
                f"{said}; not accepted, retry later",
                retry_after=_http.retry_after(response.headers),
                **kw,
            )
        if status >= 500:
            return _http.server_error(self.name, url, response)
        if status in (401, 403, 404):
            return ChannelMisconfigured(f"{said}; check the URL and the shared secret", **kw)
        if status == 410:
            return RecipientGone(f"{said}; the receiver no longer wants this member", **kw)
        return ContentRejected(f"{said}: {response.text[:200]}", **kw)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
