"""Firebase Cloud Messaging, HTTP v1 API, over httpx with a service-account OAuth token.

Not firebase-admin: its `messaging.send()` re-sends on 500/503 and sleeps through
`Retry-After` inside the call. Here google-auth signs the service account's JWT assertion,
the token is fetched from the account's `token_uri` (or TOKEN_URI) with httpx and cached
until shortly before it expires, and the message is POSTed once to
`<BASE_URL>/v1/projects/<project>/messages:send`.

Answers, by FCM error code:

=========================  ====================  ==============================================
FCM                        HTTP                  channel error
=========================  ====================  ==============================================
UNREGISTERED               404                   RecipientGone (drop the token)
SENDER_ID_MISMATCH         403                   RecipientGone (token of another project)
INVALID_ARGUMENT (token)   400                   RecipientInvalid
INVALID_ARGUMENT (other)   400                   ContentRejected
QUOTA_EXCEEDED             429                   TransientError, with Retry-After
UNAVAILABLE                503                   AmbiguousError, with Retry-After
INTERNAL / any other 5xx   500…                  AmbiguousError
THIRD_PARTY_AUTH_ERROR,    401 / 403             ChannelMisconfigured
PERMISSION_DENIED,
UNAUTHENTICATED
=========================  ====================  ==============================================

UNAVAILABLE is classified ambiguous on purpose. Google documents it as "overloaded, retry",
but a 503 can come from a front end that timed out after the back end took the message; a
duplicated notification is the outcome we promise never to produce silently. The Retry-After
travels on the error, so a caller that reconciles (or decides duplicates are acceptable for a
given journey) knows when to try. Failing to get a token is always transient (or
`ChannelMisconfigured` when the account is refused): no message was sent.

Settings (`JOURNEYMAN_CHANNELS__FCM__…`): SERVICE_ACCOUNT_JSON (the key file's content) or
SERVICE_ACCOUNT_FILE is required; PROJECT_ID (default: the key's project), BASE_URL,
TOKEN_URI, TTL and TIMEOUT are optional.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx
from google.auth import crypt, jwt
from pydantic import Field, SecretStr, model_validator

from . import _http
from .base import Channel, ChannelConfig, ContactKind, DeliveryResult, Message
from .errors import (
    AmbiguousError,
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    PermanentError,
    RecipientGone,
    RecipientInvalid,
    TransientError,
)

__all__ = ["SCOPE", "FcmChannel", "FcmConfig", "fcm_error_code"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class FcmConfig(ChannelConfig):
    service_account_json: SecretStr | None = Field(
        default=None, description="The service account key (JSON text)."
    )
    service_account_file: Path | None = Field(
        default=None, description="Path to the service account key file."
    )
    project_id: str | None = Field(default=None, description="Default: the key's project_id.")
    base_url: str = "https://fcm.googleapis.com"
    token_uri: str | None = Field(default=None, description="Default: the key's token_uri.")
    ttl: int = Field(default=86400, ge=0, description="Seconds FCM keeps an undelivered message.")
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_key(self) -> FcmConfig:
        if self.service_account_json is None and self.service_account_file is None:
            raise ValueError(
                "set JOURNEYMAN_CHANNELS__FCM__SERVICE_ACCOUNT_JSON or "
                "JOURNEYMAN_CHANNELS__FCM__SERVICE_ACCOUNT_FILE"
            )
        return self

    def service_account(self) -> dict[str, Any]:
        if self.service_account_json is not None:
            return json.loads(self.service_account_json.get_secret_value())
        assert self.service_account_file is not None
        return json.loads(self.service_account_file.read_text())


def fcm_error_code(body: Any) -> tuple[str | None, str | None, str]:
    """(FCM errorCode, Google status, message) from an FCM v1 error body."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None, None, ""
    error = body["error"]
    code = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return code, error.get("status"), str(error.get("message", ""))


class FcmChannel(Channel):
    name: ClassVar[str] = "fcm"
    contact: ClassVar[ContactKind] = ContactKind.FCM_TOKEN
    rate_limit_per_second: ClassVar[float] = 100.0
    Config = FcmConfig
    description = "Mobile push through Firebase Cloud Messaging HTTP v1 (httpx, google-auth)."

    def __init__(
        self,
        config: FcmConfig | dict[str, Any] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()
        self._account: dict[str, Any] | None = None
        super().__init__(config)

    def _on_configured(self) -> None:
        super()._on_configured()
        self._client = None
        self._token = None
        self._account = None

    # -- OAuth ---------------------------------------------------------------------------

    def _service_account(self, config: FcmConfig) -> dict[str, Any]:
        if self._account is None:
            try:
                account = config.service_account()
                account["_signer"] = crypt.RSASigner.from_service_account_info(account)
            except (OSError, ValueError, KeyError) as exc:
                raise ChannelMisconfigured(
                    f"fcm: the service account key cannot be used ({type(exc).__name__}: "
                    f"{exc}); check JOURNEYMAN_CHANNELS__FCM__SERVICE_ACCOUNT_JSON",
                    channel=self.name,
                ) from None
            self._account = account
        return self._account

    async def access_token(self) -> str:
        """A valid OAuth access token for FCM, fetched once and reused until near expiry."""
        config = self.config
        assert isinstance(config, FcmConfig)
        async with self._token_lock:
            if self._token is not None and self._token[1] > time.time() + 60:
                return self._token[0]
            account = self._service_account(config)
            token_uri = config.token_uri or account.get("token_uri")
            if not token_uri:
                raise ChannelMisconfigured(
                    "fcm: no token_uri in the service account key and no TOKEN_URI setting",
                    channel=self.name,
                )
            now = int(time.time())
            assertion = jwt.encode(
                account["_signer"],
                {
                    "iss": account["client_email"],
                    "scope": SCOPE,
                    "aud": token_uri,
                    "iat": now,
                    "exp": now + 3600,
                },
            )
            try:
                response = await _http.post(
                    self._http_client(config),
                    token_uri,
                    channel=self.name,
                    what="the OAuth token endpoint",
                    data={"grant_type": JWT_BEARER, "assertion": assertion.decode()},
                )
            except AmbiguousError as exc:  # no message was sent yet: safe to retry
                raise TransientError(exc.message, channel=self.name) from exc
            if response.status_code in (400, 401, 403):
                raise ChannelMisconfigured(
                    f"fcm: the token endpoint refused the service account "
                    f"({response.status_code}: {response.text[:200]})",
                    channel=self.name,
                    status=response.status_code,
                )
            if not response.is_success:
                raise TransientError(
                    f"fcm: the token endpoint answered {response.status_code}; nothing was sent",
                    channel=self.name,
                    status=response.status_code,
                    retry_after=_http.retry_after(response.headers),
                )
            answer = response.json()
            self._token = (answer["access_token"], now + float(answer.get("expires_in", 3600)))
            return self._token[0]

    def _http_client(self, config: FcmConfig) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _http.make_client(self._transport, config.timeout)
        return self._client

    # -- sending -------------------------------------------------------------------------

    def body(self, message: Message, config: FcmConfig) -> dict[str, Any]:
        fcm: dict[str, Any] = {
            "token": message.to,
            "data": {
                str(k): v if isinstance(v, str) else json.dumps(v) for k, v in message.data.items()
            },
            "android": {"ttl": f"{config.ttl}s"},
            "apns": {"headers": {"apns-expiration": str(int(time.time()) + config.ttl)}},
        }
        if message.delivery_id:
            fcm["data"]["delivery_id"] = message.delivery_id
        if message.title or message.subject or message.text:
            fcm["notification"] = {
                "title": message.title or message.subject or "",
                "body": message.text,
            }
        return {"message": fcm}

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, FcmConfig)
        token = await self.access_token()
        project = config.project_id or self._service_account(config).get("project_id")
        url = f"{config.base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        response = await _http.post(
            self._http_client(config),
            url,
            channel=self.name,
            what="FCM",
            json=self.body(message, config),
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.is_success:
            return DeliveryResult(
                channel=self.name,
                provider_message_id=response.json().get("name"),
                status="accepted",
            )
        raise self._error(response)

    def _error(self, response: httpx.Response) -> ChannelError:
        try:
            body = response.json()
        except ValueError:
            body = None
        code, google_status, text = fcm_error_code(body)
        status = response.status_code
        label = code or google_status or str(status)
        said = f"fcm: FCM answered {status} {label}" + (f": {text}" if text else "")
        kw: dict[str, Any] = {"channel": self.name, "status": status, "code": label}
        if status == 401:
            self._token = None  # fetch a fresh token next time
        if code in ("UNREGISTERED", "SENDER_ID_MISMATCH") or (status == 404 and not code):
            return RecipientGone(f"{said}; drop this registration token", **kw)
        if code == "QUOTA_EXCEEDED" or status == 429:
            return TransientError(
                f"{said}; rate limited, retry later",
                retry_after=_http.retry_after(response.headers),
                **kw,
            )
        if status >= 500:
            return AmbiguousError(
                f"{said}; the message may have been accepted",
                retry_after=_http.retry_after(response.headers),
                **kw,
            )
        if status in (401, 403) or code == "THIRD_PARTY_AUTH_ERROR":
            return ChannelMisconfigured(f"{said}; check the service account and project", **kw)
        if code == "INVALID_ARGUMENT" or google_status == "INVALID_ARGUMENT":
            if "token" in text.lower():
                return RecipientInvalid(f"{said}; the registration token is not valid", **kw)
            return ContentRejected(f"{said}; the message was refused", **kw)
        return PermanentError(said, **kw)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
