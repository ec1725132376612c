"""A local HTTP server that speaks Twilio's Messages API (2010-04-01).

It checks HTTP basic auth (Account SID and auth token) and the form fields the real API
requires, answers with Twilio-shaped JSON (201 with a `SM…` SID, or an error body with
`code`, `message`, `more_info`, `status`), and honours Twilio's magic test numbers:

    +15005550001  invalid number            21211
    +15005550002  cannot route              21612
    +15005550004  recipient replied STOP    21610
    +15005550009  not a mobile number       21614

`fail_next(n, 429, …)` / `fail_next(n, 500)` script failures before anything is stored;
`rate_limit(n)` and `server_error(n)` are shortcuts with Twilio's bodies.
`accept_then_fail(n, 500, delay=…)` stores the next `n` valid messages and then answers 500
(after `delay` seconds: a long delay is a provider that took the message and hangs).

`GET …/Messages.json` lists stored messages newest first, filtered by `To`, `From` and the
`DateSent` filters (`DateSent`, `DateSent<`, `DateSent>`, as dates or datetimes; a message
counts as sent when it was created), paged by `PageSize`. Lookups are counted in `lookups`,
not in `requests`; `fail_lookups(n, status)` scripts their failures.

`send_status_callback(sid, status)` posts a status callback signed the way Twilio signs
(`X-Twilio-Signature`, computed with the SDK's `RequestValidator`) to the StatusCallback URL
given with the message.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from journeyman.channels.base import WebhookRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from ._http import Failure, FailureScript, HttpPeer

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAGIC = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass
class SentSms:
    sid: str
    to: str
    from_: str | None
    body: str
    status_callback: str | None
    form: dict[str, str]
    status: str = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioPeer(HttpPeer):
    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "test-auth-token",
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[SentSms] = []
        self.callbacks_sent: list[tuple[str, dict[str, str], int]] = []
        self.lookups = 0
        self.lookup_failures = FailureScript()
        self._after_accept: deque[Failure] = deque()

    # -- scripting shortcuts -----------------------------------------------------------

    def rate_limit(self, times: int = 1, retry_after: int = 1) -> None:
        body = error_body(429, 20429, "Too Many Requests")
        self.fail_next(times, 429, body, {"Retry-After": str(retry_after)})

    def server_error(self, times: int = 1) -> None:
        self.fail_next(times, 500, error_body(500, 20500, "Internal Server Error"))

    def accept_then_fail(self, times: int = 1, status: int = 500, *, delay: float = 0.0) -> None:
        """Store the next `times` valid messages, then answer `status` instead of 201."""
        body = error_body(status, 20500, "Internal Server Error")
        for _ in range(times):
            self._after_accept.append(Failure(status, body, {}, delay))

    def fail_lookups(self, times: int = 1, status: int = 500) -> None:
        """Answer the next `times` message-list requests with `status`."""
        body = error_body(status, 20500, "Internal Server Error")
        self.lookup_failures.add(Failure(status, body), times)

    @property
    def accepted(self) -> int:
        return len(self.messages)

    # -- the API ---------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{sid}/Messages.json",
                    self._create_message,
                    methods=["POST"],
                ),
                Route(
                    "/2010-04-01/Accounts/{sid}/Messages.json",
                    self._list_messages,
                    methods=["GET"],
                ),
                Route(
                    "/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
                    self._fetch_message,
                    methods=["GET"],
                ),
            ]
        )

    def _authorised(self, request: Request, sid: str) -> bool:
        import base64

        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid == sid and password == self.auth_token

    async def _create_message(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        # parsed by hand: url-encoded forms need no multipart parser
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if not self._authorised(request, sid):
            return JSONResponse(error_body(401, 20003, "Authenticate"), status_code=401)
        to = form.get("To", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body") and not form.get("MediaUrl"):
            return _error(400, 21602, "Message body is required.")
        if len(form.get("Body", "")) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds 1600 characters.")
        if to in MAGIC:
            code, message = MAGIC[to]
            return _error(400, code, message)
        if not E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        message = SentSms(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=form.get("From"),
            body=form.get("Body", ""),
            status_callback=form.get("StatusCallback"),
            form=form,
        )
        self.messages.append(message)
        if self._after_accept:
            failure = self._after_accept.popleft()
            if failure.delay:
                await asyncio.sleep(failure.delay)
            return failure.response()
        return JSONResponse(self._resource(message), status_code=201)

    async def _list_messages(self, request: Request) -> Response:
        self.lookups += 1
        failure = self.lookup_failures.next()
        if failure is not None:
            return failure.response()
        sid = request.path_params["sid"]
        if not self._authorised(request, sid):
            return JSONResponse(error_body(401, 20003, "Authenticate"), status_code=401)
        q = request.query_params
        found = [
            m
            for m in reversed(self.messages)
            if (not q.get("To") or m.to == q["To"])
            and (not q.get("From") or m.from_ == q["From"])
            and _date_matches(m.created_at, q)
        ]
        size = max(1, min(1000, int(q.get("PageSize") or 50)))
        page = max(0, int(q.get("Page") or 0))
        chunk = found[page * size : (page + 1) * size]
        base = f"/2010-04-01/Accounts/{sid}/Messages.json"
        more = (page + 1) * size < len(found)
        return JSONResponse(
            {
                "messages": [self._resource(m) for m in chunk],
                "end": page * size + len(chunk) - 1,
                "first_page_uri": f"{base}?PageSize={size}&Page=0",
                "next_page_uri": f"{base}?PageSize={size}&Page={page + 1}" if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": None,
                "start": page * size,
                "uri": f"{base}?PageSize={size}&Page={page}",
            }
        )

    async def _fetch_message(self, request: Request) -> Response:
        if not self._authorised(request, request.path_params["sid"]):
            return JSONResponse(error_body(401, 20003, "Authenticate"), status_code=401)
        for message in self.messages:
            if message.sid == request.path_params["message_sid"]:
                return JSONResponse(self._resource(message))
        return _error(404, 20404, "The requested resource was not found")

    def _resource(self, message: SentSms) -> dict[str, Any]:
        created = format_datetime(message.created_at)
        return {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": created,
            "date_updated": created,
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(max(1, -(-len(message.body) // 153))),
            "price": None,
            "price_unit": "USD",
            "status": message.status,
            "subresource_uris": {},
            "to": message.to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }

    # -- callbacks -------------------------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        """The `X-Twilio-Signature` Twilio would put on a POST of `params` to `url`."""
        return RequestValidator(self.auth_token).compute_signature(url, params)

    async def send_status_callback(
        self,
        sid: str,
        status: str = "delivered",
        *,
        error_code: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.Response:
        """POST a signed status callback for message `sid`, as Twilio does."""
        message = next(m for m in self.messages if m.sid == sid)
        if message.status_callback is None:
            raise ValueError(f"message {sid} was sent without a StatusCallback URL")
        message.status = status
        params = self._status_params(message, status, error_code)
        return await self._post_signed(message.status_callback, params, transport)

    def signed_status(
        self, sid: str, url: str, status: str = "delivered", *, error_code: str | None = None
    ) -> WebhookRequest:
        """The status callback for message `sid` that Twilio would POST to `url`, signed, as
        the channel's `verify_webhook` and `parse_webhook` receive it."""
        message = next(m for m in self.messages if m.sid == sid)
        params = self._status_params(message, status, error_code)
        return WebhookRequest(
            "POST",
            url,
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": self.sign(url, params),
            },
            urlencode(params).encode(),
        )

    def _status_params(
        self, message: SentSms, status: str, error_code: str | None
    ) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code:
            params["ErrorCode"] = error_code
        return params

    async def send_inbound(
        self,
        url: str,
        from_: str,
        body: str,
        *,
        to: str = "+15005550006",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.Response:
        """POST a signed inbound-message webhook (a member texting us, e.g. "STOP")."""
        sid = "SM" + secrets.token_hex(16)
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": from_,
            "MessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        if body.strip().upper() in {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}:
            params["OptOutType"] = "STOP"
        return await self._post_signed(url, params, transport)

    async def _post_signed(
        self, url: str, params: dict[str, str], transport: httpx.AsyncBaseTransport | None
    ) -> httpx.Response:
        headers = {"X-Twilio-Signature": self.sign(url, params)}
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            response = await client.post(url, data=params, headers=headers)
        self.callbacks_sent.append((url, params, response.status_code))
        return response


def _parse_when(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _date_matches(created: datetime, query: Any) -> bool:
    """Twilio's DateSent filters: a bare date compares by day, a datetime exactly."""
    for key, op in (("DateSent", "="), ("DateSent>", ">="), ("DateSent<", "<=")):
        value = query.get(key)
        if not value:
            continue
        if len(value) == 10:  # YYYY-MM-DD
            day, wanted = created.date(), datetime.fromisoformat(value).date()
            ok = {"=": day == wanted, ">=": day >= wanted, "<=": day <= wanted}[op]
        else:
            when = _parse_when(value)
            ok = {"=": created == when, ">=": created >= when, "<=": created <= when}[op]
        if not ok:
            return False
    return True


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status)
