"""Privacy endpoints: erasure, export and consent.

DELETE /v1/members/{id}            crypto-shred the member (admin)
GET    /v1/members/{id}/export     everything known about the member, as JSON (admin)
PUT    /v1/members/{id}/consent    record consent changes (ingest)
GET    /v1/consent/confirm/{token} double opt-in page (a confirmation button)
POST   /v1/consent/confirm/{token} double opt-in: record the grant (400 altered, 410 expired)
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.ingest.models import FieldError
from journeyman.engine.ingest.storable import time_problem
from journeyman.engine.privacy import (
    ConfirmSigner,
    ConsentUpdate,
    ExpiredConfirmation,
    InvalidConfirmation,
    UnknownMember,
    change_consent,
    confirm,
    erase_member,
    export_member,
)
from pydantic import BaseModel, Field
from temporalio.client import Client

from .auth import require
from .errors import ERROR_RESPONSES, READ_ERRORS, ApiError, ErrorBody
from .members import MemberPath

log = logging.getLogger(__name__)
router = APIRouter()
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such member."}}
_HTML_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The link was altered or cut short.", "content": {"text/html": {}}},
    410: {"description": "The link has expired.", "content": {"text/html": {}}},
}
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


class ErasureOut(BaseModel):
    member_id: str
    erased_ids: list[str]
    already_erased: bool
    journeys_terminated: list[str]
    journeys_left_running: list[str]
    erased_at: str | None
    ids_in_clear: int = Field(
        0,
        description="Erased ids that are still the client's id inside the store (a member "
        "from before opaque ids with a journey left running): `journeyman members rekey` "
        "gives them an id of the engine's own once the journey ends.",
    )


class ConsentResult(BaseModel):
    channel: str
    purpose: str
    status: Literal["granted", "withdrawn", "confirmation_requested"]
    event_id: str


class ConsentOut(BaseModel):
    member_id: str
    results: list[ConsentResult]


async def temporal_client(request: Request) -> Client | None:
    """The app's Temporal client: `app.state.temporal`, or one connected on first use when
    `JOURNEYMAN_TEMPORAL_ADDRESS` is set; None when there is no Temporal to reach."""
    state = request.app.state
    client = getattr(state, "temporal", None)
    if client is None and request.app.state.settings.temporal_address:
        from journeyman.engine.runtime.worker import connect_temporal

        try:
            client = state.temporal = await connect_temporal(request.app.state.settings)
        except Exception as exc:  # erasure still shreds; journeys are reported as left
            log.warning("Temporal unreachable for erasure: %s", type(exc).__name__)
    return client


@router.delete(
    "/v1/members/{member_id}",
    summary="Erase a member (crypto-shredding)",
    response_model=ErasureOut,
    responses={**READ_ERRORS, **NOT_FOUND},
)
async def erase(
    request: Request,
    member_id: str = MemberPath,
    key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    try:
        result = await erase_member(
            request.app.state.store,
            member_id,
            settings=request.app.state.settings,
            temporal=await temporal_client(request),
            requested_by=f"api-key:{key.key_id}",
        )
    except UnknownMember as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return result.to_json()


@router.get(
    "/v1/members/{member_id}/export",
    summary="Everything known about a member",
    responses={**READ_ERRORS, **NOT_FOUND},
)
async def export(
    request: Request,
    member_id: str = MemberPath,
    _key: ApiKey = Depends(require("admin")),
) -> dict[str, Any]:
    try:
        return await export_member(
            request.app.state.store, member_id, settings=request.app.state.settings
        )
    except UnknownMember as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@router.put(
    "/v1/members/{member_id}/consent",
    summary="Record consent changes per channel and purpose",
    response_model=ConsentOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
)
async def put_consent(
    request: Request,
    update: ConsentUpdate,
    member_id: str = MemberPath,
    _key: ApiKey = Depends(require("ingest")),
) -> ConsentOut:
    store = request.app.state.store
    from journeyman.engine.privacy.erasure import member_ids_of

    if update.occurred_at is not None:
        settings = request.app.state.settings
        latest = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.ingest_future_skew_seconds)
        problem = time_problem(update.occurred_at, settings.ingest_earliest_occurred_at, latest)
        if problem:
            raise ApiError(
                422,
                "invalid_request",
                "the request is not valid",
                [FieldError(field="body.occurred_at", reason=problem)],
            )

    try:
        keyring = request.app.state.ingestor.keyring
        survivor = (await member_ids_of(store.pool, member_id, keyring))[0]
    except UnknownMember as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    outcomes = await change_consent(store, survivor, update, settings=request.app.state.settings)
    return ConsentOut(
        member_id=survivor,
        results=[
            ConsentResult(
                channel=o.channel, purpose=o.purpose, status=o.status, event_id=o.event_id
            )
            for o in outcomes
        ],
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
        f"max-width:32em;margin:3em auto'><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_NO_STORE,
    )


def _verify(request: Request, token: str) -> Any:
    signer = ConfirmSigner.from_settings(request.app.state.settings)
    try:
        return signer.verify(token)
    except ExpiredConfirmation:
        return _page("This link has expired", "<p>Ask for a new confirmation message.</p>", 410)
    except InvalidConfirmation:
        return _page("This link is not valid", "<p>The link was changed or cut short.</p>", 400)


@router.get(
    "/v1/consent/confirm/{token}",
    summary="Double opt-in confirmation page",
    response_class=HTMLResponse,
    responses=_HTML_ERRORS,
    tags=["consent"],
)
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    # A page with a button, not a state change: mail scanners follow links in messages.
    claims = _verify(request, token)
    if isinstance(claims, HTMLResponse):
        return claims
    return _page(
        "Confirm your subscription",
        f"<p>Receive {html.escape(claims.purpose)} messages by {html.escape(claims.channel)}?</p>"
        "<form method='post'><button type='submit'>Yes, subscribe me</button></form>",
    )


@router.post(
    "/v1/consent/confirm/{token}",
    summary="Double opt-in: confirm",
    response_class=HTMLResponse,
    responses=_HTML_ERRORS,
    tags=["consent"],
)
async def confirm_post(token: str, request: Request) -> HTMLResponse:
    claims = _verify(request, token)
    if isinstance(claims, HTMLResponse):
        return claims
    try:
        await confirm(request.app.state.store, claims, settings=request.app.state.settings)
    except ExpiredConfirmation:
        return _page("This link has expired", "<p>Ask for a new confirmation message.</p>", 410)
    return _page(
        "Subscription confirmed",
        f"<p>You will receive {html.escape(claims.purpose)} messages by "
        f"{html.escape(claims.channel)}.</p>",
    )
