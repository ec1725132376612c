"""A local HTTP endpoint that receives JSON POSTs (the signed-webhook channel's receiver, and
a stand-in for any JSON-over-HTTP provider).

With a `secret` it checks the Journeyman signature headers and answers 401 when they do not
verify. It remembers each accepted body; a repeated `Idempotency-Key` is acknowledged again
without being stored twice, as a well-behaved provider does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from journeyman.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._http import HttpPeer


@dataclass
class Received:
    id: str
    body: dict[str, Any]
    headers: dict[str, str]


class WebhookPeer(HttpPeer):
    def __init__(self, secret: str | None = None, path: str = "/hook") -> None:
        super().__init__()
        self.secret = secret
        self.path = path
        self.received: list[Received] = []
        self.gone: set[str] = set()  # `to` values answered with 410 Gone
        self._by_key: dict[str, Received] = {}

    @property
    def endpoint(self) -> str:
        return self.url + self.path

    @property
    def accepted(self) -> int:
        return len(self.received)

    def is_api(self, path: str) -> bool:
        return path == self.path

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.path, self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if self.secret is not None and not verify_signature(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER),
            raw,
            request.headers.get(SIGNATURE_HEADER),
        ):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        if body.get("to") in self.gone:
            return JSONResponse({"error": "gone"}, status_code=410)
        key = request.headers.get("idempotency-key")
        if key and key in self._by_key:
            return JSONResponse({"id": self._by_key[key].id, "duplicate": True})
        item = Received(id=secrets.token_hex(8), body=body, headers=dict(request.headers))
        self.received.append(item)
        if key:
            self._by_key[key] = item
        return JSONResponse({"id": item.id}, status_code=202)
