"""A small HTTP peer base: a Starlette app served by uvicorn on 127.0.0.1, an ephemeral port,
a failure script and request counters."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response


@dataclass
class Failure:
    """One scripted answer: status, JSON body (or None) and headers. `delay` seconds are
    slept first; `drop` closes the connection without an answer after reading the request."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class FailureScript:
    """Answers to give instead of the normal one, in order, one per request."""

    def __init__(self) -> None:
        self._queue: deque[Failure] = deque()

    def add(self, failure: Failure, times: int = 1) -> None:
        for _ in range(times):
            self._queue.append(failure)

    def peek(self) -> Failure | None:
        return self._queue[0] if self._queue else None

    def next(self) -> Failure | None:
        return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for "provider unreachable" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpPeer:
    """Base class of the HTTP peers. Use as `async with Peer() as peer:` or start()/stop().

    `requests` counts every request the peer's API endpoints received (failed or not);
    subclasses count what they accepted.
    """

    def __init__(self) -> None:
        self.failures = FailureScript()
        self.requests = 0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None

    # subclasses build their routes
    def app(self) -> Starlette:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(
        self,
        times: int,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Answer the next `times` API requests with `status` (and body, headers)."""
        self.failures.add(Failure(status, body, dict(headers or {}), delay, drop), times)

    async def scripted(self) -> Response | None:
        """Count a request and return the scripted failure for it, if one is queued."""
        self.requests += 1
        failure = self.failures.next()
        if failure is None:
            return None
        if failure.delay:
            await asyncio.sleep(failure.delay)
        return failure.response()

    def is_api(self, path: str) -> bool:
        """Whether `path` is one of the endpoints that scripted failures apply to."""
        return True

    async def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(
            _DropMiddleware(self, self.app()),
            log_level="critical",
            access_log=False,
            lifespan="off",
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        # `startup` alone, without `serve`'s main loop: the listening sockets live in this
        # event loop, a test's peer does not take over the process's signal handlers, and
        # stopping needs no polling interval.
        await server.startup(sockets=[sock])
        self._server = server
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            for listener in server.servers:
                await listener.wait_closed()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _DropMiddleware:
    """Carries out scripted drops: read the request, promise a body, then break the
    connection, so the client sees it fail after its request was sent."""

    def __init__(self, peer: HttpPeer, app: Any) -> None:
        self.peer = peer
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        failure = self.peer.failures.peek()
        if (
            scope["type"] != "http"
            or failure is None
            or not failure.drop
            or not self.peer.is_api(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        self.peer.failures.next()
        self.peer.requests += 1
        while (await receive()).get("more_body"):
            pass
        if failure.delay:
            await asyncio.sleep(failure.delay)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        raise RuntimeError("peer dropped the connection on purpose")
