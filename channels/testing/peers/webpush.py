"""A local Web Push service (RFC 8030) that does what a browser vendor's does with a push:
checks the VAPID JWT (signature, audience, expiry, subject; RFC 8292), requires a TTL, and
really decrypts the aes128gcm payload (RFC 8291) with the subscription's private key using
`http_ece`, so a test sees exactly what the browser would.

    async with WebPushPeer() as peer:
        subscription = peer.subscribe()          # what the browser hands the site
        ...send json.dumps(subscription)...
        peer.received[0].payload                 # the decrypted bytes

`expire(subscription)` makes the endpoint answer 410 Gone; `fail_next(n, 429, …)` scripts.
Give `application_server_key` (the VAPID public key, base64url) to also check that pushes
are signed with the key the subscription was created for (403 otherwise, as real services do).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import HttpPeer


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key PEM, public key as base64url uncompressed point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return pem, b64u(public)


@dataclass
class _Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    expired: bool = False


@dataclass
class ReceivedPush:
    subscription_id: str
    payload: bytes
    ttl: int
    urgency: str | None
    topic: str | None
    vapid_subject: str

    def json(self) -> Any:
        return json.loads(self.payload)


class VapidError(ValueError):
    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


class WebPushPeer(HttpPeer):
    def __init__(self, application_server_key: str | None = None) -> None:
        super().__init__()
        self.application_server_key = application_server_key
        self.received: list[ReceivedPush] = []
        self.rejections: list[str] = []
        self._subscriptions: dict[str, _Subscription] = {}

    @property
    def accepted(self) -> int:
        return len(self.received)

    def is_api(self, path: str) -> bool:
        return path.startswith("/push/")

    def subscribe(self) -> dict[str, Any]:
        """A new subscription, shaped like the browser's `PushSubscription.toJSON()`."""
        sub = _Subscription(
            id=secrets.token_urlsafe(12),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
        )
        self._subscriptions[sub.id] = sub
        public = sub.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{sub.id}",
            "expirationTime": None,
            "keys": {"p256dh": b64u(public), "auth": b64u(sub.auth)},
        }

    def expire(self, subscription: dict[str, Any]) -> None:
        """From now on the subscription's endpoint answers 410 Gone."""
        self._subscriptions[subscription["endpoint"].rsplit("/", 1)[1]].expired = True

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/push/{id}", self._push, methods=["POST"])])

    def _reject(self, status: int, reason: str) -> Response:
        self.rejections.append(reason)
        return JSONResponse({"code": status, "errno": 109, "message": reason}, status_code=status)

    async def _push(self, request: Request) -> Response:
        body = await request.body()
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        sub = self._subscriptions.get(request.path_params["id"])
        if sub is None:
            return self._reject(404, "no such subscription")
        if sub.expired:
            return self._reject(410, "subscription expired")
        try:
            subject = self._check_vapid(request.headers.get("authorization", ""))
        except VapidError as exc:
            return self._reject(exc.status, f"VAPID: {exc}")
        ttl = request.headers.get("ttl")
        if ttl is None or not ttl.isdigit():
            return self._reject(400, "TTL header missing or not a number")
        if request.headers.get("content-encoding") != "aes128gcm":
            return self._reject(415, "Content-Encoding must be aes128gcm")
        if len(body) > 4096:
            return self._reject(413, "payload too large")
        try:
            payload = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
        except Exception as exc:
            return self._reject(400, f"payload does not decrypt: {exc}")
        self.received.append(
            ReceivedPush(
                subscription_id=sub.id,
                payload=payload,
                ttl=int(ttl),
                urgency=request.headers.get("urgency"),
                topic=request.headers.get("topic"),
                vapid_subject=subject,
            )
        )
        message_id = secrets.token_urlsafe(9)
        return Response(status_code=201, headers={"Location": f"{self.url}/message/{message_id}"})

    def _check_vapid(self, header: str) -> str:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise VapidError("Authorization is not 'vapid t=…, k=…'")
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        token, key = fields.get("t"), fields.get("k")
        if not token or not key:
            raise VapidError("t= or k= missing")
        if self.application_server_key and key != self.application_server_key:
            raise VapidError("signed with a key other than the subscription's", 403)
        try:
            head, claims_b64, signature = token.split(".")
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
            raw = unb64u(signature)
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            public.verify(der, f"{head}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
            header_json = json.loads(unb64u(head))
            claims = json.loads(unb64u(claims_b64))
        except (ValueError, InvalidSignature) as exc:
            raise VapidError(f"bad JWT ({type(exc).__name__})") from None
        if header_json.get("alg") != "ES256":
            raise VapidError("alg must be ES256")
        if claims.get("aud") != self.url:
            raise VapidError(f"aud {claims.get('aud')!r} is not {self.url!r}")
        exp = int(claims.get("exp", 0))
        if not time.time() < exp <= time.time() + 24 * 3600:
            raise VapidError("exp missing, past, or more than 24 hours ahead")
        subject = str(claims.get("sub", ""))
        if not subject.startswith(("mailto:", "https:")):
            raise VapidError("sub must be a mailto: or https: URL")
        return subject
