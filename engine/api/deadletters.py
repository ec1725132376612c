"""Admin endpoints for dead letters (events a reader of the store parked and went on without):

GET  /v1/admin/dead-letters              list (status=parked|retried|dropped|all)
GET  /v1/admin/dead-letters/{id}         one, with the stored event (raw if undecodable)
POST /v1/admin/dead-letters/{id}/retry   hand it back to its consumer (after a fix)
POST /v1/admin/dead-letters/{id}/drop    give it up
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.deadletters import actions as deadletters
from journeyman.event_store.deadletters import list_dead_letters
from pydantic import BaseModel, Field

from .auth import require
from .errors import READ_ERRORS, ApiError, ErrorBody
from .privacy import temporal_client

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["operations"])
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such dead letter."}}
IdPath = Path(ge=1, le=2**62, description="The dead letter's id.")


class DropIn(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.get("", summary="Dead letters, oldest first", responses={**READ_ERRORS})
async def list_(
    request: Request,
    status: Literal["parked", "retried", "dropped", "all"] = Query("parked"),
    consumer: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
    _key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    found = await list_dead_letters(
        request.app.state.store.pool,
        status=None if status == "all" else status,
        consumer=consumer,
        limit=limit,
    )
    return {"dead_letters": [deadletters.as_dict(d) for d in found]}


@router.get("/{dead_letter_id}", summary="One dead letter", responses={**READ_ERRORS, **NOT_FOUND})
async def show(
    request: Request,
    dead_letter_id: int = IdPath,
    _key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    out = await deadletters.show(request.app.state.store, dead_letter_id)
    if out is None:
        raise ApiError(404, "not_found", f"no dead letter {dead_letter_id}")
    return out


@router.post(
    "/{dead_letter_id}/retry",
    summary="Hand a dead letter back to its consumer",
    responses={
        **READ_ERRORS,
        **NOT_FOUND,
        409: {"model": ErrorBody, "description": "Already processed by a retry."},
    },
)
async def retry(
    request: Request,
    dead_letter_id: int = IdPath,
    _key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    """`ok: false` (with the error) when it failed again: it stays parked."""
    try:
        outcome = await deadletters.retry(
            request.app.state.store,
            request.app.state.settings,
            dead_letter_id,
            temporal=await temporal_client(request),
        )
    except deadletters.UnknownDeadLetter as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except deadletters.AlreadyRetried as exc:
        raise ApiError(409, "already_retried", str(exc)) from None
    return {
        "ok": outcome.ok,
        "message": outcome.message,
        "dead_letter": deadletters.as_dict(outcome.dead_letter),
    }


@router.post(
    "/{dead_letter_id}/drop",
    summary="Give a dead letter up",
    responses={**READ_ERRORS, **NOT_FOUND},
)
async def drop(
    request: Request,
    body: DropIn | None = None,
    dead_letter_id: int = IdPath,
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    reason = (body.reason if body else "") or f"dropped by api-key:{key.key_id}"
    try:
        dl = await deadletters.drop(request.app.state.store, dead_letter_id, reason)
    except deadletters.UnknownDeadLetter as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return {"dead_letter": deadletters.as_dict(dl)}
