"""Reporting endpoints: `GET /v1/journeys`, `GET /v1/journeys/{name}/stats`,
`GET /v1/members/{id}/journeys` (the member's journey trace), plus `/healthz` and `/metrics`.

Every figure comes from `journeyman.engine.analytics.report`, which computes it from the events in
the store. Reports read through the analytics database (`JOURNEYMAN_ANALYTICS_DATABASE_URL`, e.g. a
read replica), which is the main database unless set.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.analytics import report as analytics
from journeyman.engine.core import metrics
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.ingest.models import ID_PATTERN
from pydantic import BaseModel, Field

from .auth import require
from .errors import READ_ERRORS, ApiError, ErrorBody

router = APIRouter()
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such journey or member."}}


def analytics_pool(request: Request) -> asyncpg.Pool:
    """Where reports read: the analytics database, or the store's own pool."""
    pool = getattr(request.app.state, "analytics_pool", None)
    return pool if pool is not None else request.app.state.store.pool


def registered(request: Request) -> dict[str, type]:
    """Journey classes by name (from the plugin manager), cached on the app."""
    found = getattr(request.app.state, "journeys", None)
    if found is None:
        from journeyman.engine.runtime.worker import registered_journeys

        found = registered_journeys()
        request.app.state.journeys = found
    return found


def describe(name: str, cls: type | None) -> dict[str, Any]:
    if cls is None:
        return {"name": name, "registered": False}
    spec = cls.__journey__  # type: ignore[attr-defined]
    trigger = spec.trigger
    return {
        "name": name,
        "registered": True,
        "description": spec.description,
        "trigger": trigger.event_type or f"inactivity {trigger.days:g} days",
        "goal": None if spec.goal is None else spec.goal.event_type,
        "variants": dict(spec.variants),
        "holdout_share": spec.holdout,
    }


class JourneySummary(BaseModel):
    name: str
    registered: bool = Field(description="False for a journey seen in the store only.")
    description: str = ""
    trigger: str | None = None
    goal: str | None = None
    variants: dict[str, float] = Field(default_factory=dict)
    holdout_share: float = 0.0
    stats: dict[str, Any] = Field(description="Totals, treatment, holdout and lift.")


class MemberTrace(BaseModel):
    member_id: str
    trace: list[dict[str, Any]] = Field(
        description="Journey and message events in order, each with an `explanation`."
    )


async def _stats(
    request: Request, name: str | None, *, detail: bool = True
) -> list[analytics.JourneyStats]:
    try:
        return await analytics.journey_stats(
            analytics_pool(request),
            name,
            detail=detail,
            max_unprojected=analytics.MAX_UNPROJECTED,
        )
    except analytics.ProjectionBehind as exc:
        raise ApiError(503, "catching_up", str(exc)) from None


async def all_summaries(request: Request) -> list[dict[str, Any]]:
    journeys = registered(request)
    found = await _stats(request, None, detail=False)
    stats = {s.journey: s for s in found}
    out = []
    for name in sorted(set(journeys) | set(stats)):
        s = stats.get(name) or analytics.JourneyStats(name)
        d = s.as_dict()
        out.append(
            {
                **describe(name, journeys.get(name)),
                "stats": {k: d[k] for k in ("total", "treatment", "holdout", "lift")},
            }
        )
    return out


async def one_journey(request: Request, name: str) -> dict[str, Any]:
    journeys = registered(request)
    found = await _stats(request, name)
    if name not in journeys and not found:
        raise ApiError(404, "not_found", f"no journey named {name!r} is registered or recorded")
    stats = found[0] if found else analytics.JourneyStats(name)
    return {**describe(name, journeys.get(name)), **stats.as_dict()}


@router.get(
    "/v1/journeys",
    summary="Journeys with their funnel totals and lift",
    response_model=list[JourneySummary],
    responses=READ_ERRORS,
    tags=["journeys"],
)
async def list_journeys(
    request: Request, _key: ApiKey = Depends(require("read"))
) -> list[dict[str, Any]]:
    return await all_summaries(request)


@router.get(
    "/v1/journeys/{name}/stats",
    summary="One journey's funnels per variant, holdout and channel, lift with 95% intervals",
    responses={**READ_ERRORS, **NOT_FOUND},
    tags=["journeys"],
)
async def journey_stats(
    request: Request,
    name: str = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$"),
    _key: ApiKey = Depends(require("read")),
) -> dict[str, Any]:
    return await one_journey(request, name)


@router.get(
    "/v1/members/{member_id}/journeys",
    summary="Why a member did or did not get a message: their journey trace",
    response_model=MemberTrace,
    responses={**READ_ERRORS, **NOT_FOUND},
    tags=["members"],
)
async def member_journeys(
    request: Request,
    member_id: str = Path(min_length=1, max_length=128, pattern=ID_PATTERN),
    _key: ApiKey = Depends(require("read")),
) -> MemberTrace:
    pool = analytics_pool(request)
    survivor = await resolve_member_id(pool, member_id, request.app.state.ingestor.keyring)
    trace = await analytics.member_trace(pool, survivor)
    if not trace:
        exists = await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1)", f"member-{survivor}"
        )
        if not exists:
            raise ApiError(404, "not_found", f"member {member_id} has no events")
    return MemberTrace(member_id=survivor, trace=trace)


@router.get("/healthz", summary="Liveness and database reachability", tags=["operations"])
async def healthz(request: Request) -> JSONResponse:
    try:
        await request.app.state.store.pool.fetchval("SELECT 1")
    except Exception as exc:
        return JSONResponse(
            {"part": "api", "status": "failing", "problems": {"database": str(exc)}},
            status_code=503,
        )
    warnings: dict[str, str] = {}
    try:
        oldest = await metrics.oldest_transaction(request.app.state.store.pool)
    except Exception as exc:  # statistics not readable: say so, the API itself is fine
        warnings["long_transaction"] = f"cannot read pg_stat_activity: {exc}"
    else:
        limit = request.app.state.settings.long_transaction_warn_seconds
        if warning := metrics.long_transaction_warning(oldest, limit):
            warnings["long_transaction"] = warning
    return JSONResponse({"part": "api", "status": "ok", "problems": {}, "warnings": warnings})


@router.get("/metrics", summary="Prometheus metrics", tags=["operations"], response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    store_metrics = metrics.register_store_metrics()
    if time.time() - store_metrics.snapshot.at > 2.0:
        await store_metrics.refresh(request.app.state.store.pool)
    return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")
