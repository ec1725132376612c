"""The Python client of the ingestion API, sync (`JourneymanClient`) and async
(`AsyncJourneymanClient`).

    with JourneymanClient("http://127.0.0.1:8787", api_key) as jm:
        jm.track("cart.updated", member={"email": "ann@example.com"}, properties={"items": 2})
        jm.send_batch(events)          # split into requests of `batch_size` events

Every event gets an `event_id` (a UUID unless you give one) before its first attempt, so
retries are safe: the server stores an event once however often it arrives. Requests are
retried on connection errors, timeouts, 429 (honouring `Retry-After`) and 5xx, with
exponential backoff and jitter. Other 4xx answers raise `ApiRequestError`; a batch whose
events were all rejected is returned, not raised: each outcome says why.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from journeyman.engine.ingest.answers import EventOutcome, IngestResult
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class ApiRequestError(Exception):
    """The API refused a request (4xx other than 429); `status` and `body` say why."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("error", {}).get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")


def make_event(
    type: str,
    member: Mapping[str, Any],
    properties: Mapping[str, Any] | None = None,
    *,
    occurred_at: dt.datetime | str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event dict as `POST /v1/events` expects it, with an event id and a timestamp."""
    when = occurred_at or dt.datetime.now(dt.UTC)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": type,
        "member": dict(member),
        "occurred_at": when.isoformat() if isinstance(when, dt.datetime) else when,
        "properties": dict(properties or {}),
    }


def _identify_event(
    member: Mapping[str, Any],
    traits: Mapping[str, Any] | None,
    timezone: str | None,
    locale: str | None,
    occurred_at: dt.datetime | str | None,
    event_id: str | None,
) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if traits:
        props["traits"] = dict(traits)
    if timezone:
        props["timezone"] = timezone
    if locale:
        props["locale"] = locale
    return make_event(
        "member.identified", member, props, occurred_at=occurred_at, event_id=event_id
    )


def _with_ids(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        d = dict(e)
        if "event_id" not in d:
            d["event_id"] = str(uuid.uuid4())
        if isinstance(d.get("occurred_at"), dt.datetime):
            d["occurred_at"] = d["occurred_at"].isoformat()
        out.append(d)
    return out


def _chunks(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def _combine(results: list[tuple[int, IngestResult]]) -> IngestResult:
    outcomes: list[EventOutcome] = []
    for offset, r in results:
        if offset:
            # The outcomes were parsed for this call alone: renumbering them in place is
            # safe, and a copy of each costs more than the request's own parsing.
            for o in r.results:
                o.index += offset
        outcomes.extend(r.results)
    return IngestResult(
        accepted=sum(r.accepted for _, r in results),
        duplicates=sum(r.duplicates for _, r in results),
        rejected=sum(r.rejected for _, r in results),
        results=outcomes,
    )


class _Policy:
    def __init__(self, max_retries: int, backoff: float, max_backoff: float) -> None:
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and response.status_code == 429:
            retry_after = response.headers.get("retry-after", "")
            try:
                return min(float(retry_after), self.max_backoff)
            except ValueError:
                pass
        base = min(self.backoff * 2**attempt, self.max_backoff)
        return base / 2 + random.random() * base / 2

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        response = outcome.result() if outcome is not None and not outcome.failed else None
        return self.delay(state.attempt_number - 1, response)

    def retrying(self) -> dict[str, Any]:
        """Tenacity's options: a request that could not be sent, or was answered 429 or
        503, is sent again after `delay`, up to `max_retries` times; then the last answer
        is returned (and read as an error) or the last transport error raised."""
        return {
            "retry": retry_if_exception_type((httpx.TransportError, httpx.TimeoutException))
            | retry_if_result(lambda r: r.status_code in _RETRY_STATUSES),
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": self._wait,
            "retry_error_callback": lambda state: state.outcome.result(),
        }

    @staticmethod
    def result(response: httpx.Response) -> IngestResult:
        if response.status_code in (200, 422):
            try:
                return IngestResult.model_validate_json(response.content)
            except ValueError:
                pass
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if isinstance(body, dict) and "results" in body:
            return IngestResult.model_validate(body)
        raise ApiRequestError(response.status_code, body)


class JourneymanClient:
    """Blocking client. `transport` lets tests and embedders inject an httpx transport."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.batch_size = batch_size
        self._policy = _Policy(max_retries, backoff, max_backoff)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> JourneymanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def track(
        self,
        type: str,
        member: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        *,
        occurred_at: dt.datetime | str | None = None,
        event_id: str | None = None,
    ) -> EventOutcome:
        event = make_event(type, member, properties, occurred_at=occurred_at, event_id=event_id)
        return self.send_batch([event]).results[0]

    def identify(
        self,
        member: Mapping[str, Any],
        traits: Mapping[str, Any] | None = None,
        *,
        timezone: str | None = None,
        locale: str | None = None,
        occurred_at: dt.datetime | str | None = None,
        event_id: str | None = None,
    ) -> EventOutcome:
        event = _identify_event(member, traits, timezone, locale, occurred_at, event_id)
        return self.send_batch([event]).results[0]

    def send_batch(self, events: Iterable[Mapping[str, Any]]) -> IngestResult:
        """Send any number of events, `batch_size` per request, in order."""
        prepared = _with_ids(events)
        results = []
        for i, chunk in enumerate(_chunks(prepared, self.batch_size)):
            results.append((i * self.batch_size, self._post(chunk)))
        return _combine(results)

    def _post(self, chunk: list[dict[str, Any]]) -> IngestResult:
        body = json.dumps({"events": chunk}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        send = Retrying(**self._policy.retrying())
        response = send(self._http.post, "/v1/events", content=body, headers=headers)
        return self._policy.result(response)


class AsyncJourneymanClient:
    """asyncio client; `send_batch(…, concurrency=n)` keeps up to n requests in flight."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.batch_size = batch_size
        self._policy = _Policy(max_retries, backoff, max_backoff)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncJourneymanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def track(
        self,
        type: str,
        member: Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        *,
        occurred_at: dt.datetime | str | None = None,
        event_id: str | None = None,
    ) -> EventOutcome:
        event = make_event(type, member, properties, occurred_at=occurred_at, event_id=event_id)
        return (await self.send_batch([event])).results[0]

    async def identify(
        self,
        member: Mapping[str, Any],
        traits: Mapping[str, Any] | None = None,
        *,
        timezone: str | None = None,
        locale: str | None = None,
        occurred_at: dt.datetime | str | None = None,
        event_id: str | None = None,
    ) -> EventOutcome:
        event = _identify_event(member, traits, timezone, locale, occurred_at, event_id)
        return (await self.send_batch([event])).results[0]

    async def send_batch(
        self, events: Iterable[Mapping[str, Any]], *, concurrency: int = 1
    ) -> IngestResult:
        """Send any number of events, `batch_size` per request, up to `concurrency` at once
        (with concurrency > 1, batches may be stored out of order)."""
        prepared = _with_ids(events)
        chunks = _chunks(prepared, self.batch_size)
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(i: int, chunk: list[dict[str, Any]]) -> tuple[int, IngestResult]:
            async with gate:
                return i * self.batch_size, await self._post(chunk)

        return _combine(list(await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks)))))

    async def _post(self, chunk: list[dict[str, Any]]) -> IngestResult:
        body = json.dumps({"events": chunk}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        send = AsyncRetrying(**self._policy.retrying())
        response = await send(self._http.post, "/v1/events", content=body, headers=headers)
        return self._policy.result(response)
