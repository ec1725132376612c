"""The FastAPI application: routes, error handlers, OpenAPI, and the lifespan that opens
the event store (and the analytics database, when it is another one) and runs the profile
and journey analytics projections in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from journeyman.engine.access.keys import KeyVerifier
from journeyman.engine.analytics.projector import JourneyStatsProjector
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.ingest.models import EventBatchIn
from journeyman.engine.profiles import ProfileProjector
from journeyman.engine.runtime.logs import quiet_http_clients
from journeyman.event_store import PostgresEventStore, create_pool
from pydantic.json_schema import models_json_schema
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from . import (
    dashboard,
    deadletters,
    errors,
    events,
    feedback,
    journeys,
    limits,
    members,
    parameters,
    privacy,
    segment,
)
from .heap import freeze_startup_objects
from .limits import RequestLimits

log = logging.getLogger(__name__)


async def _project_forever(projector: ProfileProjector | JourneyStatsProjector) -> None:
    """Keep a projection current; a failure is logged and retried, after 0.5 s doubling up to
    30 s (cancellation ends it)."""

    def failed(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        name = type(projector).__name__
        log.error("%s failed; retrying in %.1f s", name, pause, exc_info=error)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=30),
        before_sleep=failed,
    )
    await retrying(projector.run_forever)


def create_app(
    settings: Settings | None = None,
    store: PostgresEventStore | None = None,
    *,
    run_projector: bool | None = None,
) -> FastAPI:
    """The HTTP API. Without `store`, it connects to the configured database on startup."""
    settings = settings or get_settings()
    project = settings.api_run_projector if run_projector is None else run_projector

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        if store is None:
            from journeyman.engine.runtime.db import database_url

            s = await PostgresEventStore.connect(
                database_url(settings), min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        else:
            s = store
        app.state.store = s
        app.state.analytics_pool = s.pool
        if settings.analytics_database_url:
            from journeyman.engine.runtime.db import asyncpg_dsn

            app.state.analytics_pool = await create_pool(
                asyncpg_dsn(settings.analytics_database_url),
                min_size=1,
                max_size=settings.db_pool_max,
            )
        app.state.settings = settings
        app.state.ingestor = Ingestor(s, settings)
        app.state.verifier = KeyVerifier(s.pool)
        feedback.warn_at_start(app.state, settings)
        quiet_http_clients(settings.log_http_requests)
        tasks = []
        if project:
            tasks = [
                asyncio.create_task(_project_forever(ProfileProjector(s, settings))),
                asyncio.create_task(_project_forever(JourneyStatsProjector(s, settings))),
            ]
        if own:
            # A process serving the API: what start-up loaded stays for its lifetime.
            freeze_startup_objects()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if app.state.analytics_pool is not s.pool:
                await app.state.analytics_pool.close()
            if own:
                await s.close()

    app = FastAPI(
        title="Journeyman",
        version="1",
        description="Event ingestion and member profiles. Authenticate with an API key: "
        "`Authorization: Bearer jm_…` (or HTTP Basic with the key as user name).",
        lifespan=lifespan,
        dependencies=[Depends(parameters.plain_parameters)],
    )
    errors.install(app)
    app.include_router(events.router, tags=["events"])
    app.include_router(segment.router)
    app.include_router(members.router, tags=["members"])
    app.include_router(privacy.router, tags=["privacy"])
    app.include_router(feedback.router)
    app.include_router(journeys.router)
    app.include_router(deadletters.router)
    dashboard.install(app)
    app.add_middleware(RequestLimits)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema["info"]["description"] = app.description
        _, defs = models_json_schema(
            [
                (EventBatchIn, "validation"),
                (segment.SegmentCall, "validation"),
                (segment.SegmentBatch, "validation"),
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        limits.document(schema)
        parameters.document(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
