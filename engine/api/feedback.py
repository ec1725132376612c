"""Feedback endpoints: provider webhooks, click and open tracking, one-click unsubscribe.

    POST /webhooks/{channel}      provider callbacks (Twilio status callbacks and inbound
                                  SMS for `sms`), verified with the channel's own signature
                                  check (Twilio: RequestValidator on X-Twilio-Signature)
    GET  /t/c/{token}             signed click link: records the click, 302 to the target
    GET  /t/o/{token}.gif         signed open pixel: records the open, answers a 1x1 GIF
    GET  /u/{token}               the unsubscribe page (a confirmation button)
    POST /u/{token}               unsubscribe: RFC 8058 one-click (List-Unsubscribe=One-Click)
                                  and the page's button; answers 200, never a redirect

These take no API key: the link tokens are HMAC-signed (an altered token is 400, an expired
one 410) and webhooks carry the provider's signature (403 when it does not verify). A
signature is checked over `JOURNEYMAN_DELIVERY__PUBLIC_URL` + path + query only: the URL the
request claims (its `Host` header) is the sender's to choose. Without a public URL, signed
callbacks are refused (403); a body that is not UTF-8 form data is 400.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.feedback import (
    Feedback,
    WebhookRejected,
    public_url,
    warn_without_public_url,
)
from journeyman.engine.delivery.links import ExpiredToken, InvalidToken, LinkClaims, LinkKind

if TYPE_CHECKING:
    from journeyman.event_store import PostgresEventStore

router = APIRouter(include_in_schema=True, tags=["feedback"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
_LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The link was altered or cut short.", "content": {"text/html": {}}},
    410: {"description": "The link has expired.", "content": {"text/html": {}}},
}
_WEBHOOK_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Applied; TwiML for `sms`, a count of recorded events otherwise.",
        "content": {"application/xml": {}, "text/plain": {}},
    },
    400: {"description": "The body is not UTF-8 form data.", "content": {"text/plain": {}}},
    403: {
        "description": "The signature does not verify, or no public URL is configured.",
        "content": {"text/plain": {}},
    },
    404: {
        "description": "No configured channel of that name, or it takes no callbacks.",
        "content": {"text/plain": {}},
    },
}


def feedback_of(request: Request) -> Feedback:
    """The app's `Feedback` (created on first use from the app's store and settings)."""
    state = request.app.state
    found = getattr(state, "feedback", None)
    if found is None:
        found = state.feedback = _feedback(state.store, state.settings)
    return found


def _feedback(store: PostgresEventStore, settings: Settings) -> Feedback:
    from journeyman.engine.delivery.workers import load_channels

    return Feedback(store, load_channels(settings, strict=False), settings)


def warn_at_start(state: Any, settings: Settings) -> None:
    """Say at start when signed provider callbacks will be refused (no public URL). The
    channels are loaded only then, and kept for the callbacks that follow."""
    if public_url(settings) is not None:
        return
    state.feedback = _feedback(state.store, settings)
    warn_without_public_url(settings, state.feedback.channels)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
        f"max-width:32em;margin:3em auto'><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers=_NO_STORE,
    )


def _claims(fb: Feedback, token: str, kind: LinkKind) -> LinkClaims | HTMLResponse:
    try:
        return fb.links.verify(token, kind)
    except ExpiredToken:
        return _page("This link has expired", "<p>The link is too old to use.</p>", 410)
    except InvalidToken:
        return _page("This link is not valid", "<p>The link was changed or cut short.</p>", 400)


@router.get(
    "/t/c/{token}",
    summary="Follow a tracked link",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the link's target."}, **_LINK_ERRORS},
)
async def click(token: str, request: Request) -> Response:
    fb = feedback_of(request)
    claims = _claims(fb, token, "click")
    if isinstance(claims, Response):
        return claims
    url = await fb.click(claims)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


@router.get(
    "/t/o/{token}.gif",
    summary="Open-tracking pixel",
    responses={200: {"content": {"image/gif": {}}}, **_LINK_ERRORS},
)
async def open_pixel(token: str, request: Request) -> Response:
    fb = feedback_of(request)
    claims = _claims(fb, token, "open")
    if isinstance(claims, Response):
        return claims
    await fb.open(claims)
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.get(
    "/u/{token}", summary="Unsubscribe page", response_class=HTMLResponse, responses=_LINK_ERRORS
)
async def unsubscribe_page(token: str, request: Request) -> Response:
    fb = feedback_of(request)
    claims = _claims(fb, token, "unsubscribe")
    if isinstance(claims, Response):
        return claims
    channel = html.escape(claims.channel)
    return _page(
        "Unsubscribe",
        f"<p>Stop marketing messages by {channel}?</p>"
        "<form method='post'><input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@router.post(
    "/u/{token}",
    summary="Unsubscribe (RFC 8058 one-click)",
    response_class=HTMLResponse,
    responses=_LINK_ERRORS,
)
async def unsubscribe(token: str, request: Request) -> Response:
    fb = feedback_of(request)
    claims = _claims(fb, token, "unsubscribe")
    if isinstance(claims, Response):
        return claims
    body = (await request.body()).decode(errors="replace")
    how = "one_click" if "List-Unsubscribe=One-Click" in body else "page"
    await fb.unsubscribe(claims, how=how)
    return _page(
        "You are unsubscribed",
        f"<p>You will get no more marketing messages by {html.escape(claims.channel)}.</p>",
    )


@router.post(
    "/webhooks/{channel}",
    summary="Provider callback for a channel",
    response_class=PlainTextResponse,
    responses=_WEBHOOK_ANSWERS,
)
async def webhook(channel: str, request: Request) -> Response:
    fb = feedback_of(request)
    try:
        n = await fb.webhook(
            channel,
            path=request.url.path,
            query=request.url.query,
            headers=dict(request.headers),
            body=await request.body(),
            method=request.method,
        )
    except WebhookRejected as exc:
        return PlainTextResponse(exc.message, status_code=exc.status)
    # Twilio reads the answer to an inbound message as TwiML: an empty response sends nothing
    if channel == "sms":
        return Response("<Response/>", media_type="application/xml")
    return PlainTextResponse(f"{n} event(s) recorded")
