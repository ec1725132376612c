"""The pigeon channel: each message is POSTed as JSON to a pigeon loft's HTTP API.

POST <loft_url>/v1/pigeons
Authorization: Bearer <api_key>
Idempotency-Key: <key>
{"member": "...", "text": "...", "subject": "..."}

201 {"id": "..."}          accepted
404                        the loft knows no perch for this member   -> RecipientInvalid
401 / 403                  wrong API key                            -> ChannelMisconfigured
429 (Retry-After)          the loft is busy                         -> TransientError
5xx                        may have flown                           -> AmbiguousError
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from journeyman.channels import (
    AmbiguousError,
    Channel,
    ChannelConfig,
    ChannelMisconfigured,
    ContactKind,
    ContentRejected,
    DeliveryResult,
    Message,
    RecipientInvalid,
    TransientError,
)
from pydantic import Field, SecretStr


class PigeonConfig(ChannelConfig):
    loft_url: str = Field(description="Base URL of the pigeon loft API.")
    api_key: SecretStr = Field(description="The loft's API key.")
    timeout: float = Field(default=10.0, gt=0)


class PigeonChannel(Channel):
    name: ClassVar[str] = "pigeon"
    contact: ClassVar[ContactKind] = ContactKind.MEMBER
    rate_limit_per_second: ClassVar[float] = 2.0  # pigeons are slow
    Config = PigeonConfig
    description = "Carrier pigeons, booked through a loft's HTTP API."

    def __init__(
        self,
        config: PigeonConfig | dict[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        super().__init__(config)

    def _on_configured(self) -> None:
        super()._on_configured()
        self._client = None

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, PigeonConfig)
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=config.timeout)
        url = config.loft_url.rstrip("/") + "/v1/pigeons"
        try:
            response = await self._client.post(
                url,
                json={"member": message.to, "text": message.text, "subject": message.subject},
                headers={
                    "Authorization": f"Bearer {config.api_key.get_secret_value()}",
                    "Idempotency-Key": idempotency_key,
                },
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransientError(
                f"pigeon: cannot reach the loft ({exc})", channel="pigeon"
            ) from exc
        except httpx.TransportError as exc:
            raise AmbiguousError(
                f"pigeon: the loft went quiet after the request ({exc}); it may have flown",
                channel="pigeon",
            ) from exc
        status = response.status_code
        if status in (200, 201, 202):
            return DeliveryResult(channel=self.name, provider_message_id=response.json()["id"])
        kw: dict[str, Any] = {"channel": self.name, "status": status}
        if status == 429:
            retry_after = response.headers.get("retry-after")
            raise TransientError(
                "pigeon: the loft is busy",
                retry_after=float(retry_after) if retry_after else None,
                **kw,
            )
        if status >= 500:
            raise AmbiguousError(f"pigeon: the loft answered {status}; it may have flown", **kw)
        if status in (401, 403):
            raise ChannelMisconfigured("pigeon: the loft refused our API key", **kw)
        if status == 404:
            raise RecipientInvalid(f"pigeon: no perch for member {message.to!r}", **kw)
        raise ContentRejected(f"pigeon: the loft refused the message ({status})", **kw)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
