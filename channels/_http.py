"""Shared HTTP plumbing for channels that talk to providers over httpx.

One POST per `send`, no retries, and one rule for transport failures: a failure before the
request could reach the provider (connect error, connect or pool timeout) is a
`TransientError`; anything after the request was being written (read timeout, dropped
connection, protocol error) is an `AmbiguousError`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import AmbiguousError, ChannelError, TransientError


def make_client(transport: httpx.AsyncBaseTransport | None, timeout: float) -> httpx.AsyncClient:
    """An httpx client without retries (httpx never retries requests; transport retries,
    which only cover connect failures, stay at 0)."""
    return httpx.AsyncClient(
        transport=transport or httpx.AsyncHTTPTransport(retries=0),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
    )


def retry_after(headers: Mapping[str, str] | httpx.Headers | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), if any."""
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    channel: str,
    what: str,
    **kwargs: Any,
) -> httpx.Response:
    """POST once; transport failures become Transient or Ambiguous errors naming `what`."""
    try:
        return await client.post(url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransientError(
            f"{channel}: could not connect to {what} ({type(exc).__name__}: {exc}); "
            "nothing was sent",
            channel=channel,
        ) from exc
    except httpx.TransportError as exc:
        raise AmbiguousError(
            f"{channel}: {what} did not answer after the request was sent "
            f"({type(exc).__name__}: {exc}); the message may have been accepted",
            channel=channel,
        ) from exc


def server_error(
    channel: str, what: str, response: httpx.Response, code: str | int | None = None
) -> ChannelError:
    """A 5xx after a POST: the provider may have acted on it."""
    return AmbiguousError(
        f"{channel}: {what} answered {response.status_code} after the request was sent; "
        "the message may have been accepted",
        channel=channel,
        status=response.status_code,
        code=code,
        retry_after=retry_after(response.headers),
    )
