"""A local pigeon loft for tests: the provider's API on 127.0.0.1, built on
`journeyman.channels.testing.peers.HttpPeer` (which gives it a port, counters and `fail_next`)."""

from __future__ import annotations

import json
import secrets

from journeyman.channels.testing.peers import HttpPeer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class PigeonLoft(HttpPeer):
    def __init__(self, api_key: str = "loft-key", perches: set[str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.perches = perches  # None: every member has a perch
        self.flights: list[dict] = []

    @property
    def accepted(self) -> int:
        return len(self.flights)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/pigeons", self._book, methods=["POST"])])

    async def _book(self, request: Request) -> Response:
        body = json.loads(await request.body())
        scripted = await self.scripted()  # counts the request; a scripted failure wins
        if scripted is not None:
            return scripted
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        if self.perches is not None and body["member"] not in self.perches:
            return JSONResponse({"error": "no perch"}, status_code=404)
        flight = {"id": secrets.token_hex(6), **body}
        self.flights.append(flight)
        return JSONResponse({"id": flight["id"]}, status_code=201)
