"""A local FCM HTTP v1 endpoint with its own OAuth token endpoint.

The peer owns a service account: `service_account_info()` returns a Google-format key whose
`token_uri` points at the peer, so google-auth signs a real JWT assertion that the peer
verifies (RS256 signature, issuer, audience, scope, expiry) before it issues a bearer token.
`POST /v1/projects/<project>/messages:send` checks that token and the message, and answers
with FCM's own error bodies:

    peer.unregister(token)        # → 404 UNREGISTERED
    peer.quota_exceeded(n, 30)    # → 429 QUOTA_EXCEEDED, Retry-After: 30
    peer.unavailable(n)           # → 503 UNAVAILABLE
    peer.internal(n)              # → 500 INTERNAL

A token that starts with "invalid" is answered 400 INVALID_ARGUMENT, as a malformed
registration token is.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import FailureScript, HttpPeer

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def fcm_error(status: int, google_status: str, message: str, code: str | None = None) -> dict:
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    if code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return {"error": error}


@dataclass
class ReceivedFcm:
    name: str
    message: dict[str, Any]

    @property
    def token(self) -> str:
        return self.message["token"]


class FcmPeer(HttpPeer):
    def __init__(self, project_id: str = "journeyman-test") -> None:
        super().__init__()
        self.project_id = project_id
        self.client_email = f"sender@{project_id}.iam.gserviceaccount.com"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.received: list[ReceivedFcm] = []
        self.token_requests = 0
        self.token_failures = FailureScript()
        self.unregistered: set[str] = set()
        self._tokens: dict[str, float] = {}

    @property
    def accepted(self) -> int:
        return len(self.received)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def is_api(self, path: str) -> bool:
        return path.endswith("/messages:send")

    def service_account_info(self) -> dict[str, str]:
        """A Google-format service account key for this peer's project."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "local-key-1",
            "private_key": self._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": self.client_email,
            "client_id": "1",
            "token_uri": self.token_uri,
        }

    # -- scripting ---------------------------------------------------------------------

    def unregister(self, token: str) -> None:
        self.unregistered.add(token)

    def quota_exceeded(self, times: int = 1, retry_after: int = 1) -> None:
        body = fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
        self.fail_next(times, 429, body, {"Retry-After": str(retry_after)})

    def unavailable(self, times: int = 1, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        body = fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")
        self.fail_next(times, 503, body, headers)

    def internal(self, times: int = 1) -> None:
        self.fail_next(times, 500, fcm_error(500, "INTERNAL", "Internal error.", "INTERNAL"))

    # -- endpoints -------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = dict(parse_qsl((await request.body()).decode()))
        failure = self.token_failures.next()
        if failure is not None:
            return failure.response()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(
                form.get("assertion", ""), certs=self._public_pem, audience=self.token_uri
            )
        except ValueError as exc:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": str(exc)}, status_code=400
            )
        if claims.get("iss") != self.client_email or SCOPE not in str(claims.get("scope")):
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "wrong issuer or scope"},
                status_code=400,
            )
        token = "ya29.local-" + secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + 3600
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _send(self, request: Request) -> Response:
        raw = await request.body()
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self._tokens.get(bearer, 0) < time.time():
            body = fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication.")
            return JSONResponse(body, status_code=401)
        if request.path_params["project"] != self.project_id:
            body = fcm_error(403, "PERMISSION_DENIED", "Permission denied.", "SENDER_ID_MISMATCH")
            return JSONResponse(body, status_code=403)
        try:
            message = json.loads(raw)["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return _invalid("Request contains an invalid argument.")
        if token in self.unregistered:
            body = fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
            return JSONResponse(body, status_code=404)
        if not isinstance(token, str) or token.startswith("invalid"):
            return _invalid("The registration token is not a valid FCM registration token")
        data = message.get("data") or {}
        if not all(isinstance(v, str) for v in data.values()):
            return _invalid("Invalid value at 'message.data': values must be strings")
        name = f"projects/{self.project_id}/messages/{secrets.randbelow(10**16)}"
        self.received.append(ReceivedFcm(name=name, message=message))
        return JSONResponse({"name": name})


def _invalid(message: str) -> JSONResponse:
    body = fcm_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT")
    return JSONResponse(body, status_code=400)
