"""Running the API: in-process on a free port (tests, benchmarks) or as a process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.stack import free_port


@contextlib.asynccontextmanager
async def serve_in_background(
    app: FastAPI, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn inside the running event loop; yields the base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped during startup")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


def run(host: str, port: int, settings: Settings | None = None, workers: int = 1) -> None:
    """Serve the API on `host:port` until interrupted (the configured database). With
    several workers, each is its own process (settings then come from the environment)."""
    if workers > 1:
        uvicorn.run(
            "journeyman.engine.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
        return
    from .app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
