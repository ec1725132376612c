"""Signed links: click tracking, open pixels and one-click unsubscribe.

A token is `<payload>.<signature>`, both base64url: the payload is compact JSON naming the
link's kind, the delivery, the member, the channel, the target URL (clicks) and an expiry;
the signature is HMAC-SHA256 under a key derived from the server secret. Nothing in a token
is personal data beyond the member id, and nobody can forge or alter one without the secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

LinkKind = Literal["click", "open", "unsubscribe"]
_KINDS = {"click": "c", "open": "o", "unsubscribe": "u"}
_NAMES = {v: k for k, v in _KINDS.items()}


class InvalidToken(ValueError):
    """A link token that was altered, truncated or signed with another secret."""


class ExpiredToken(InvalidToken):
    """A correctly signed link token past its expiry."""


@dataclass(frozen=True)
class LinkClaims:
    kind: LinkKind
    delivery_id: str
    member_id: str
    channel: str
    url: str | None
    expires_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks signed links under `base_url` (the API's public URL)."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._key = hmac.new(secret, b"journeyman links v1", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    # -- tokens ----------------------------------------------------------------------
    def token(
        self,
        kind: LinkKind,
        *,
        delivery_id: str,
        member_id: str,
        channel: str,
        expires_at: dt.datetime,
        url: str | None = None,
    ) -> str:
        claims: dict[str, object] = {
            "k": _KINDS[kind],
            "d": delivery_id,
            "m": member_id,
            "c": channel,
            "x": int(expires_at.timestamp()),
        }
        if url is not None:
            claims["u"] = url
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:20]

    def verify(self, token: str, kind: LinkKind, *, now: dt.datetime | None = None) -> LinkClaims:
        """The claims of a valid token of `kind`; `InvalidToken` (or `ExpiredToken`) if not."""
        try:
            encoded, signature = token.split(".", 1)
            payload = _unb64(encoded)
            given = _unb64(signature)
        except ValueError:
            raise InvalidToken("the link is malformed") from None
        if not hmac.compare_digest(given, self._sign(payload)):
            raise InvalidToken("the link's signature does not match")
        try:
            claims = json.loads(payload)
            found = _NAMES[claims["k"]]
            expires = dt.datetime.fromtimestamp(int(claims["x"]), dt.UTC)
            parsed = LinkClaims(
                kind=found,  # type: ignore[arg-type]
                delivery_id=str(claims["d"]),
                member_id=str(claims["m"]),
                channel=str(claims["c"]),
                url=claims.get("u"),
                expires_at=expires,
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidToken("the link's payload is not a link") from None
        if parsed.kind != kind:
            raise InvalidToken(f"the link is a {parsed.kind} link, not a {kind} link")
        if (now or dt.datetime.now(dt.UTC)) >= expires:
            raise ExpiredToken(f"the link expired at {expires.isoformat()}")
        return parsed

    # -- URLs ------------------------------------------------------------------------
    def click_url(self, target: str, **claims: object) -> str:
        token = self.token("click", url=target, **claims)  # type: ignore[arg-type]
        return f"{self.base_url}/t/c/{quote(token, safe='.-_')}"

    def open_url(self, **claims: object) -> str:
        token = self.token("open", **claims)  # type: ignore[arg-type]
        return f"{self.base_url}/t/o/{quote(token, safe='.-_')}.gif"

    def unsubscribe_url(self, **claims: object) -> str:
        token = self.token("unsubscribe", **claims)  # type: ignore[arg-type]
        return f"{self.base_url}/u/{quote(token, safe='.-_')}"
