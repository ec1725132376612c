"""SMS through Twilio's Messages API, with the official `twilio` SDK.

The SDK builds and parses the requests; its HTTP client is ours (`HttpxTwilioClient`, over
httpx, with no retries — twilio's own `AsyncTwilioHttpClient(max_retries=…)` re-POSTs a
message on every 5xx). Its transport is injectable, and `API_BASE_URL` points the SDK at
another host (a local Twilio-speaking peer in tests and demos).

Each send asks Twilio to report status changes to `STATUS_CALLBACK_URL` with our delivery id
added as the `delivery_id` query parameter, so callbacks find their delivery without a
lookup by SID. `verify_webhook` checks `X-Twilio-Signature` with the SDK's
`RequestValidator`; `parse_webhook` turns status callbacks and inbound messages (including
STOP) into `DeliveryEvent`s.

`reconcile` answers whether Twilio holds a message that was sent with an ambiguous answer: it
lists the Messages resource filtered by `To` (and `From` when the channel sends from a
number) and looks for an outbound message with the same body created since the delivery's
first attempt (less five minutes for clock skew). Twilio returns neither our status callback
URL nor any field of ours, so the body is the match: SMS bodies carrying a tracked link are
unique per delivery; two identical bodies to one number within the window cannot be told
apart. The `DateSent` filters are not used: a message still queued has no date sent yet.

Errors: HTTP 429 / code 20429 → `TransientError` with the Retry-After; any 5xx after the
POST → `AmbiguousError`; 21211, 21612, 21614 (invalid, unroutable or non-mobile number) →
`RecipientInvalid`; 21610 (the member replied STOP) → `RecipientUnsubscribed`; 20003 and
other authentication or sender errors → `ChannelMisconfigured`; body errors →
`ContentRejected`; any other 4xx → `PermanentError`.

Settings (`JOURNEYMAN_CHANNELS__SMS__…`): ACCOUNT_SID, AUTH_TOKEN and one of FROM_NUMBER or
MESSAGING_SERVICE_SID; optional STATUS_CALLBACK_URL, API_BASE_URL, TIMEOUT.
"""

from __future__ import annotations

import contextvars
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import Field, SecretStr, model_validator
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from . import _http
from .base import (
    Channel,
    ChannelConfig,
    ContactKind,
    DeliveryEvent,
    DeliveryResult,
    Message,
    WebhookRequest,
)
from .errors import (
    AmbiguousError,
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    PermanentError,
    RecipientInvalid,
    RecipientUnsubscribed,
    TransientError,
)

__all__ = ["HttpxTwilioClient", "SmsChannel", "SmsConfig", "classify_twilio_error"]

_logger = logging.getLogger("journeyman.channels.sms")
_last_headers: contextvars.ContextVar[httpx.Headers | None] = contextvars.ContextVar(
    "twilio_last_headers", default=None
)

RECIPIENT_INVALID = {21211, 21612, 21614, 21401, 21407}
RECIPIENT_UNSUBSCRIBED = {21610}
MISCONFIGURED = {20003, 20005, 20404, 21212, 21408, 21606, 21659, 21703, 21705}
CONTENT_REJECTED = {21602, 21617, 21619, 30007}
RECONCILE_LOOKBACK = timedelta(days=1)  # when the first attempt's time is not known
SKEW = timedelta(minutes=5)
STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
STATUS_KINDS = {
    "queued": "accepted",
    "accepted": "accepted",
    "scheduled": "accepted",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "opened",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


class SmsConfig(ChannelConfig):
    account_sid: str = Field(description="Twilio Account SID (AC…).")
    auth_token: SecretStr = Field(description="Twilio auth token.")
    from_number: str | None = Field(default=None, description="Sender number in E.164.")
    messaging_service_sid: str | None = Field(default=None, description="MG… instead of From.")
    status_callback_url: str | None = Field(
        default=None, description="Public URL of our Twilio status-callback endpoint."
    )
    api_base_url: str | None = Field(
        default=None, description="Base URL of the Twilio API; empty means Twilio itself."
    )
    timeout: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _one_sender(self) -> SmsConfig:
        if not self.from_number and not self.messaging_service_sid:
            raise ValueError(
                "set JOURNEYMAN_CHANNELS__SMS__FROM_NUMBER or "
                "JOURNEYMAN_CHANNELS__SMS__MESSAGING_SERVICE_SID"
            )
        return self


class HttpxTwilioClient(AsyncHttpClient):
    """The `twilio` SDK's async HTTP client interface over httpx: one request per call, no
    retries, an injectable transport, and transport failures classified as channel errors."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, timeout: float = 15.0
    ) -> None:
        super().__init__(logger=_logger, is_async=True, timeout=timeout)
        self._client = _http.make_client(transport, timeout)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        kwargs: dict[str, Any] = {
            "params": params,
            "data": data,
            "headers": headers,
            "auth": auth,
            "follow_redirects": allow_redirects,
        }
        if timeout is not None:
            kwargs["timeout"] = timeout
        if method.upper() == "POST":
            response = await _http.post(
                self._client, url, channel="sms", what="the Twilio API", **kwargs
            )
        else:
            response = await self._client.request(method, url, **kwargs)
        _last_headers.set(response.headers)
        return TwilioResponse(response.status_code, response.text, headers=response.headers)

    async def aclose(self) -> None:
        await self._client.aclose()


def classify_twilio_error(
    status: int, code: int | None, text: str, headers: Any = None
) -> ChannelError:
    """The channel error for a Twilio error answer."""
    kw: dict[str, Any] = {"channel": "sms", "code": code, "status": status}
    said = f"sms: Twilio answered {status}" + (f" (error {code})" if code else "") + f": {text}"
    if status == 429 or code == 20429:
        return TransientError(
            f"{said}; rate limited, retry later", retry_after=_http.retry_after(headers), **kw
        )
    if status >= 500:
        return AmbiguousError(
            f"{said}; the message may have been accepted",
            retry_after=_http.retry_after(headers),
            **kw,
        )
    if code in RECIPIENT_UNSUBSCRIBED:
        return RecipientUnsubscribed(f"{said}; the member has opted out of SMS", **kw)
    if code in RECIPIENT_INVALID:
        return RecipientInvalid(f"{said}; the number cannot receive SMS", **kw)
    if code in MISCONFIGURED or status in (401, 403):
        return ChannelMisconfigured(f"{said}; check the Twilio credentials and sender", **kw)
    if code in CONTENT_REJECTED:
        return ContentRejected(f"{said}; the message body was refused", **kw)
    return PermanentError(said, **kw)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class SmsChannel(Channel):
    name: ClassVar[str] = "sms"
    contact: ClassVar[ContactKind] = ContactKind.PHONE
    rate_limit_per_second: ClassVar[float] = 10.0
    Config = SmsConfig
    description = "SMS through Twilio's Messages API (twilio SDK)."

    def __init__(
        self,
        config: SmsConfig | dict[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._client: Client | None = None
        self._http: HttpxTwilioClient | None = None
        super().__init__(config)

    def _on_configured(self) -> None:
        super()._on_configured()
        self._client = None  # rebuilt with the new settings on the next send

    def _twilio(self) -> Client:
        config = self.config
        assert isinstance(config, SmsConfig)
        if self._client is None:
            self._http = HttpxTwilioClient(self._transport, config.timeout)
            client = Client(
                config.account_sid,
                config.auth_token.get_secret_value(),
                http_client=self._http,
                environment={},
            )
            if config.api_base_url:
                client.api.base_url = config.api_base_url.rstrip("/")
            self._client = client
        return self._client

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, SmsConfig)
        client = self._twilio()
        params: dict[str, Any] = {"to": message.to, "body": message.text}
        if message.sender or config.from_number:
            params["from_"] = message.sender or config.from_number
        if config.messaging_service_sid:
            params["messaging_service_sid"] = config.messaging_service_sid
        if config.status_callback_url:
            callback = config.status_callback_url
            if message.delivery_id:
                callback = _with_query(callback, delivery_id=message.delivery_id)
            params["status_callback"] = callback
        token = _last_headers.set(None)
        try:
            created = await client.messages.create_async(**params)
        except TwilioException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            code = getattr(exc, "code", None)
            text = getattr(exc, "msg", None) or getattr(exc, "title", None) or str(exc)
            raise classify_twilio_error(status, code, text, _last_headers.get()) from exc
        finally:
            _last_headers.reset(token)
        return DeliveryResult(
            channel=self.name,
            provider_message_id=created.sid,
            status=str(created.status or "queued"),
            detail={"to": created.to, "segments": created.num_segments},
        )

    async def reconcile(self, message: Message, idempotency_key: str) -> DeliveryResult | None:
        config = self.config
        assert isinstance(config, SmsConfig)
        client = self._twilio()
        since = (message.first_attempt_at or datetime.now(UTC) - RECONCILE_LOOKBACK) - SKEW
        filters: dict[str, Any] = {"to": message.to, "page_size": 100, "limit": 500}
        sender = message.sender or config.from_number
        if sender and not config.messaging_service_sid:
            filters["from_"] = sender
        token = _last_headers.set(None)
        try:
            records = await client.messages.list_async(**filters)
        except TwilioException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            code = getattr(exc, "code", None)
            text = getattr(exc, "msg", None) or getattr(exc, "title", None) or str(exc)
            answer = exc.args[1] if len(exc.args) > 1 else None  # a page the SDK refused
            if not status and isinstance(answer, TwilioResponse):
                status, text = answer.status_code, answer.text[:200]
            error = classify_twilio_error(status, code, text, _last_headers.get())
            if 0 < status < 500 and status != 429:
                raise error from exc
            raise AmbiguousError(
                f"sms: cannot tell now whether Twilio has the message ({error.message})",
                channel=self.name,
                code=code,
                status=status,
                retry_after=error.retry_after,
            ) from exc
        except httpx.HTTPError as exc:
            raise TransientError(
                f"sms: the Twilio API could not be reached to look the message up "
                f"({type(exc).__name__})",
                channel=self.name,
            ) from exc
        finally:
            _last_headers.reset(token)
        for record in records:
            created = record.date_created
            if (
                record.body == message.text
                and str(record.direction or "outbound").startswith("outbound")
                and (created is None or created >= since)
            ):
                return DeliveryResult(
                    channel=self.name,
                    provider_message_id=record.sid,
                    status=str(record.status or "queued"),
                    accepted_at=created or datetime.now(UTC),
                    detail={"to": record.to, "reconciled": True},
                )
        return None

    async def verify_webhook(self, request: WebhookRequest) -> bool:
        config = self.config
        assert isinstance(config, SmsConfig)
        signature = request.header("X-Twilio-Signature")
        if not signature:
            return False
        validator = RequestValidator(config.auth_token.get_secret_value())
        return bool(validator.validate(request.url, request.form(), signature))

    async def parse_webhook(self, request: WebhookRequest) -> list[DeliveryEvent]:
        form = request.form()
        query = parse_qs(urlsplit(request.url).query)
        delivery_id = (query.get("delivery_id") or [None])[0]
        now = datetime.now(UTC)
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        if status == "received" or (form.get("Body") is not None and not form.get("MessageStatus")):
            body = form.get("Body", "")
            opted_out = form.get("OptOutType", "").upper() == "STOP" or (
                body.strip().upper() in STOP_WORDS
            )
            return [
                DeliveryEvent(
                    kind="unsubscribed" if opted_out else "inbound",
                    channel=self.name,
                    provider_message_id=form.get("MessageSid") or form.get("SmsSid"),
                    occurred_at=now,
                    contact=form.get("From"),
                    text=body,
                    raw=form,
                )
            ]
        kind = STATUS_KINDS.get(status)
        if kind is None:
            return []
        return [
            DeliveryEvent(
                kind=kind,
                channel=self.name,
                provider_message_id=form.get("MessageSid") or form.get("SmsSid"),
                delivery_id=delivery_id,
                occurred_at=now,
                error_code=form.get("ErrorCode") or None,
                contact=form.get("To"),
                raw=form,
            )
        ]

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._client = None
