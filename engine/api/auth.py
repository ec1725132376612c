"""API key authentication: `Authorization: Bearer <token>`, or HTTP Basic with the token as
user name (how Segment and RudderStack libraries send their write key)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPBasic, HTTPBearer
from journeyman.engine.access.keys import ApiKey, KeyVerifier

from .errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="An API key: `jm_…`.")
_basic = HTTPBasic(auto_error=False, description="Segment style: the API key as user name.")


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0] or None
    return None


async def verify(request: Request, token: str | None, scope: str) -> ApiKey:
    """The key for `token` if it has `scope` (or `admin`): else 401 or 403."""
    if token is None:
        raise ApiError(401, "unauthenticated", "an API key is required (Authorization header)")
    verifier: KeyVerifier = request.app.state.verifier
    key = await verifier.verify(token)
    if key is None:
        raise ApiError(401, "invalid_api_key", "the API key is unknown or revoked")
    if not key.allows(scope):
        raise ApiError(
            403,
            "insufficient_scope",
            f"this endpoint needs the {scope!r} scope; the key has {', '.join(sorted(key.scopes))}",
        )
    return key


def require(
    scope: str, fallback: Callable[[Request], Awaitable[str | None]] | None = None
) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits keys with `scope` (or `admin`): 401 without a valid key, 403
    with a key that lacks the scope. `fallback` finds a key elsewhere when the request has no
    Authorization header (Segment's `writeKey` in the body)."""

    async def dependency(
        request: Request,
        _b: object = Depends(_bearer),
        _c: object = Depends(_basic),
    ) -> ApiKey:
        token = _token(request)
        if token is None and fallback is not None:
            token = await fallback(request)
        return await verify(request, token, scope)

    return dependency
