"""Request limits for every route, as one ASGI middleware:

* **Body size**: a body larger than `ingest_max_body_bytes` is refused with 413, by its
  declared Content-Length before it is read, or as soon as the bytes read pass the limit.
* **Compressed bodies**: a body sent with `Content-Encoding: gzip` (as Segment's and
  RudderStack's libraries do) is inflated here, and the same size limit applies to the
  inflated JSON, so a small compressed body cannot expand without bound. Routes then see
  plain JSON. Any other content encoding is refused with 415.
* **JSON nesting**: a JSON body nested deeper than `api_max_json_depth` is refused with 400
  before any route parses it (deep nesting costs recursion in every parser behind it).
* **Ingestion rate**: ingestion calls (`POST /v1/events` and the Segment-compatible
  `/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/alias`, `/v1/group`,
  `/v1/batch`) take a token from the bucket of their API key
  (`journeyman.engine.access.ratelimit`); an empty bucket is answered 429 with `Retry-After`. Calls
  without a valid key are limited by client address instead (and then refused with 401 by the
  route).
* **Ingestion concurrency**: once its body is read, an ingestion call needs a slot of the
  process's `AdmissionGate` (`ingest_max_in_flight` at once, `ingest_max_queued` waiting,
  each for at most `ingest_max_queue_seconds`); beyond the queue it is answered 503 with
  `Retry-After` at once, and so is a request still waiting when its time is up
  (`journeyman.engine.api.admission`).
"""

from __future__ import annotations

import re
import time
import zlib
from itertools import accumulate
from typing import Any

from journeyman.engine.access.ratelimit import TokenBuckets
from journeyman.engine.core import metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .admission import AdmissionGate
from .auth import _token
from .errors import SEGMENT_PATHS, error_response

INGEST_PATHS = frozenset({"/v1/events"}) | SEGMENT_PATHS
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEEP = b"[]{}"
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _bracket_depth(text: bytes) -> int:
    brackets = text.translate(None, _DELETE)
    if not brackets:
        return 0
    return max(accumulate(_STEP[b] for b in brackets))


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays/objects in a JSON text (brackets inside strings do not
    count). Works on invalid JSON too: it only bounds what a parser would face."""
    return _bracket_depth(_STRING.sub(b"", body))


def deeper_than(body: bytes, limit: int) -> bool:
    """Whether `body` nests deeper than `limit`. Counting every bracket, strings included,
    bounds the depth from above and costs a twentieth of removing the strings first, so
    the exact count runs only for a body that bound does not clear."""
    return _bracket_depth(body) > limit and json_depth(body) > limit


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class RequestLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._buckets: TokenBuckets | None = None
        self._anonymous: TokenBuckets | None = None
        self.gate: AdmissionGate | None = None

    def _settings(self, scope: Scope) -> Any:
        return scope["app"].state.settings if hasattr(scope["app"].state, "settings") else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        settings = self._settings(scope)
        if settings is None:
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        ingest = scope["method"] == "POST" and scope["path"] in INGEST_PATHS
        try:
            if ingest:
                await self._rate(scope, settings)
            body = await self._read(scope, receive, settings.ingest_max_body_bytes)
            body = _inflate(scope, body, settings.ingest_max_body_bytes)
            if body and _is_json(scope) and deeper_than(body, settings.api_max_json_depth):
                raise _Refused(
                    400,
                    "too_deep",
                    f"the JSON body nests deeper than {settings.api_max_json_depth} levels",
                )
        except _Refused as exc:
            flat = scope["path"] in SEGMENT_PATHS
            response = error_response(exc.status, exc.code, exc.message, flat=flat)
            response.headers.update(exc.headers)
            await response(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if not ingest:
            await self.app(scope, replay, send)
            return
        gate = self._gate(settings)
        queued = time.perf_counter()
        if not await gate.enter():
            # The body was read whole: the connection stays usable for the retry.
            metrics.INGEST_REFUSED.inc()
            seconds = int(settings.ingest_retry_after_seconds)
            response = error_response(
                503,
                "overloaded",
                f"this API process is at its limit of {gate.max_in_flight} ingestion requests "
                f"in flight and {gate.max_queued} waiting (for at most {gate.max_wait or 0:g} "
                f"s); retry after {seconds} s",
                flat=scope["path"] in SEGMENT_PATHS,
            )
            response.headers["Retry-After"] = str(seconds)
            await response(scope, receive, send)
            return
        admitted = time.perf_counter()
        metrics.INGEST_QUEUE_SECONDS.observe(admitted - queued)
        try:
            await self.app(scope, replay, send)
        finally:
            gate.leave()
            metrics.INGEST_REQUEST_SECONDS.observe(time.perf_counter() - arrived)

    def _gate(self, settings: Any) -> AdmissionGate:
        if self.gate is None:
            wait = float(settings.ingest_max_queue_seconds)
            self.gate = AdmissionGate(
                int(settings.ingest_max_in_flight),
                int(settings.ingest_max_queued),
                wait if wait > 0 else None,
            )
        return self.gate

    async def _rate(self, scope: Scope, settings: Any) -> None:
        rate = float(settings.ingest_rate_per_second)
        if rate <= 0:
            return
        if self._buckets is None:
            burst = max(1.0, float(settings.ingest_rate_burst))
            self._buckets = TokenBuckets(rate, burst)
            self._anonymous = TokenBuckets(rate, burst)
        assert self._anonymous is not None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = _token(_HeaderView(headers))
        key = None
        verifier = getattr(scope["app"].state, "verifier", None)
        if token is not None and verifier is not None:
            key = await verifier.verify(token)
        if key is not None:
            buckets, name, who = self._buckets, key.key_id, f"API key {key.key_id}"
        else:
            client = scope.get("client") or ("unknown", 0)
            buckets, name, who = self._anonymous, str(client[0]), "unauthenticated callers"
        wait = buckets.take(name)
        if wait > 0:
            seconds = buckets.retry_after(wait)
            raise _Refused(
                429,
                "rate_limited",
                f"{who} sent more than {rate:g} ingestion requests per second; "
                f"retry after {seconds} s",
                {"Retry-After": str(seconds)},
            )

    async def _read(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > limit:
                raise _Refused(413, "body_too_large", f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, "body_too_large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _inflate(scope: Scope, body: bytes, limit: int) -> bytes:
    """Inflate a gzip body (at most `limit` bytes of output) and drop `Content-Encoding`
    from the request, so the route reads plain JSON."""
    encoding = None
    for k, v in scope["headers"]:
        if k == b"content-encoding":
            encoding = v.decode("latin-1").strip().lower()
    if encoding in (None, "", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise _Refused(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported (gzip is)"
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
        if len(plain) > limit or inflater.unconsumed_tail:
            raise _Refused(413, "body_too_large", f"the inflated body is larger than {limit} bytes")
        if not inflater.eof:
            raise _Refused(400, "invalid_gzip", "the gzip body is truncated")
    except zlib.error as exc:
        raise _Refused(400, "invalid_gzip", f"the body is not valid gzip: {exc}") from exc
    scope["headers"] = [
        (k, str(len(plain)).encode() if k == b"content-length" else v)
        for k, v in scope["headers"]
        if k != b"content-encoding"
    ]
    return plain


class _HeaderView:
    """Just enough of a Request for `auth._token`."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def _is_json(scope: Scope) -> bool:
    for k, v in scope["headers"]:
        if k == b"content-type":
            media = v.decode("latin-1").split(";", 1)[0].strip().lower()
            return media == "application/json" or media.endswith("+json")
    return False


def document(schema: dict[str, Any]) -> None:
    """Add the answers this middleware can give to an OpenAPI schema: 429 and 503 on
    ingestion operations, 400 and 413 on every operation that takes a body."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    answers = {
        "400": "The body is not valid JSON, or nests too deeply.",
        "413": "The body is too large.",
        "429": "Too many ingestion requests for this API key; see Retry-After.",
        "503": "The API process has too many ingestion requests in flight and waiting; "
        "retry after Retry-After seconds (nothing of the request was stored).",
    }
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            if method.upper() not in _BODY_METHODS or "requestBody" not in op:
                continue
            codes = ("400", "413", "429", "503") if path in INGEST_PATHS else ("400", "413")
            for code in codes:
                op.setdefault("responses", {}).setdefault(
                    code,
                    {
                        "description": answers[code],
                        "content": {"application/json": {"schema": ref}},
                    },
                )


__all__ = ["INGEST_PATHS", "RequestLimits", "document", "json_depth"]
