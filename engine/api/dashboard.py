"""The dashboard: server-rendered pages under `/dashboard` (Jinja2, inline SVG, no JS).

* `/dashboard` — journeys with their funnel totals and lift;
* `/dashboard/journeys/{name}` — one journey: funnel chart (treatment vs holdout), lift
  with its 95% interval, variants, channels, outcomes, send → conversion times;
* `/dashboard/deliveries` — the most recent message events, and counts by type over the
  last `COUNT_WINDOW` of them;
* `/dashboard/members?id=…` — a member's journey trace.

Access needs an admin API key — in the `Authorization` header, or entered once on
`/dashboard/login`, which opens a session (`journeyman.engine.access.sessions`): the cookie holds
an opaque session id, never the key; it expires after `JOURNEYMAN_DASHBOARD_SESSION_HOURS`, ends at
`POST /dashboard/logout` or when the key is revoked, and is `Secure` when the dashboard is
served over https (the request's scheme or `JOURNEYMAN_DELIVERY__PUBLIC_URL`) — unless
`JOURNEYMAN_DASHBOARD_LOCAL_ONLY` is on, which admits requests from 127.0.0.1 / ::1 without a
key (`journeyman up` turns it on; behind a reverse proxy every request looks local, so leave
it off there).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from journeyman.engine.access.sessions import close_session, open_session, session_key
from journeyman.engine.analytics import report as analytics
from journeyman.engine.identity import resolve_member_id
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import _token
from .journeys import all_summaries, analytics_pool, one_journey

router = APIRouter(prefix="/dashboard", include_in_schema=False)
COOKIE = "journeyman_dashboard"
DASH = "\u2013"
LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates" / "dashboard"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEYMAN_DASHBOARD_", extra="ignore")

    local_only: bool = False
    """Admit requests from the local machine without a key."""
    session_hours: float = Field(default=8.0, gt=0)
    """How long a sign-in lasts."""


class _NeedsLogin(Exception):
    pass


def _pct(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{100 * x:.{digits}f}%"


def _pp(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    return f"{100 * x:+.1f} pp"


def _money(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    return f"{x:,.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


_env.filters.update(pct=_pct, pp=_pp, money=_money, duration=_duration)


def render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context))


async def admitted(request: Request) -> str:
    """Who is looking: 'local' or the admin key id; otherwise raise to the login page."""
    local_only = getattr(request.app.state, "dashboard_local_only", None)
    if local_only is None:
        local_only = DashboardSettings().local_only
        request.app.state.dashboard_local_only = local_only
    client = request.client.host if request.client else ""
    if local_only and client in LOCAL_HOSTS:
        return "local"
    token = _token(request)
    if token:
        key = await request.app.state.verifier.verify(token)
        if key is not None and "admin" in key.scopes:
            return key.key_id
    session = request.cookies.get(COOKIE)
    if session:
        key_id = await session_key(request.app.state.store.pool, session)
        if key_id is not None:
            return key_id
    raise _NeedsLogin


def _https(request: Request) -> bool:
    """Served over https: the request says so, or the configured public URL does (behind a
    proxy that ends TLS, the request itself arrives over plain http)."""
    settings = getattr(request.app.state, "settings", None)
    public = settings.delivery.public_url if settings is not None else ""
    return request.url.scheme == "https" or public.lower().startswith("https://")


def install(app: Any) -> None:
    """Add the dashboard routes and the redirect to its login page."""

    @app.exception_handler(_NeedsLogin)
    async def _login(request: Request, exc: _NeedsLogin) -> Response:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return RedirectResponse(f"/dashboard/login?next={target}", status_code=303)

    app.include_router(router)


# ------------------------------------------------------------------ charts
def funnel_chart(stats: dict[str, Any]) -> dict[str, Any]:
    """Bars per stage for treatment and holdout, as shares of entries (SVG geometry)."""
    stages = ["entered", "messaged", "delivered", "clicked", "converted"]
    groups = [("treatment", stats["treatment"]), ("holdout", stats["holdout"])]
    width, label_w, bar_h, gap = 640, 110, 14, 10
    rows = []
    y = 10
    for stage in stages:
        bars = []
        for i, (group, f) in enumerate(groups):
            entered = f["entered"] or 0
            share = (f[stage] / entered) if entered else 0.0
            bars.append(
                {
                    "group": group,
                    "y": y + i * (bar_h + 2),
                    "w": max(1.0, share * (width - label_w - 120)),
                    "count": f[stage],
                    "share": share,
                }
            )
        rows.append({"stage": stage, "y": y, "bars": bars})
        y += 2 * (bar_h + 2) + gap
    return {"rows": rows, "width": width, "height": y + 4, "label_w": label_w, "bar_h": bar_h}


def interval_chart(interval: dict[str, Any] | None, scale: float | None = None) -> dict | None:
    """An interval on an axis with zero marked (SVG geometry), or None."""
    if interval is None or not all(math.isfinite(interval[k]) for k in ("estimate", "low", "high")):
        return None
    width, pad = 640, 40
    reach = scale or max(abs(interval["low"]), abs(interval["high"]), 1e-9) * 1.25

    def x(v: float) -> float:
        return pad + (v + reach) / (2 * reach) * (width - 2 * pad)

    return {
        "width": width,
        "height": 56,
        "zero": x(0),
        "low": x(interval["low"]),
        "high": x(interval["high"]),
        "estimate": x(interval["estimate"]),
        "left": x(-reach),
        "right": x(reach),
        "reach": reach,
        "significant": interval["significant"],
    }


# ------------------------------------------------------------------ pages
@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def journeys_page(request: Request, who: str = Depends(admitted)) -> HTMLResponse:
    journeys = await all_summaries(request)
    return render("journeys.html", journeys=journeys, who=who, page="journeys")


@router.get("/journeys/{name}", response_class=HTMLResponse)
async def journey_page(request: Request, name: str, who: str = Depends(admitted)) -> Response:
    from .errors import ApiError

    try:
        stats = await one_journey(request, name)
    except ApiError as err:
        return render("error.html", message=err.message, who=who, page="journeys")
    lift = stats["lift"]
    return render(
        "journey.html",
        j=stats,
        funnel=funnel_chart(stats),
        conv=interval_chart(lift["conversion_rate"]),
        rev=interval_chart(lift["revenue_per_entry"]),
        who=who,
        page="journeys",
    )


_RECENT = """
SELECT global_position, stream_id, type, data, occurred_at FROM events
WHERE type = ANY($1::text[]) {where}
ORDER BY global_position DESC LIMIT $2
"""
COUNT_WINDOW = 10_000  # message events the deliveries page counts by type
# One journey's events, read backwards by `events_journey_position_idx`.
JOURNEY_FILTER = "AND data->>'journey' = $3"
_MESSAGE_TYPES = [
    "message.sent",
    "message.failed",
    "message.suppressed",
    "message.deferred",
    "message.delivered",
    "message.bounced",
    "message.clicked",
    "message.opened",
    "journey.message_withheld",
]


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries_page(
    request: Request, journey: str | None = None, who: str = Depends(admitted)
) -> HTMLResponse:
    pool = analytics_pool(request)
    where, extra = (JOURNEY_FILTER, [journey]) if journey else ("", [])
    rows = await pool.fetch(_RECENT.format(where=where), _MESSAGE_TYPES, 100, *extra)
    # Counts over a recent window, not all history: the page's cost stays flat as sends
    # accumulate (the journey pages carry the all-time figures, from the projection).
    counts = await pool.fetch(
        f"SELECT type, count(*) AS n FROM ({_RECENT.format(where=where)}) recent "
        "GROUP BY 1 ORDER BY 1",
        _MESSAGE_TYPES,
        COUNT_WINDOW,
        *extra,
    )
    items = [
        {
            "position": r["global_position"],
            "member": r["stream_id"].removeprefix("member-"),
            "type": r["type"],
            "at": r["occurred_at"],
            "journey": (r["data"] or {}).get("journey"),
            "channel": (r["data"] or {}).get("channel"),
            "template": (r["data"] or {}).get("template"),
            "reason": (r["data"] or {}).get("reason"),
            "delivery_id": (r["data"] or {}).get("delivery_id"),
        }
        for r in rows
    ]
    return render(
        "deliveries.html",
        items=items,
        counts=counts,
        window=COUNT_WINDOW,
        journey=journey,
        who=who,
        page="deliveries",
    )


@router.get("/members", response_class=HTMLResponse)
async def member_page(
    request: Request, id: str | None = None, who: str = Depends(admitted)
) -> HTMLResponse:
    trace: list[dict[str, Any]] | None = None
    survivor = None
    profile = None
    if id:
        pool = analytics_pool(request)
        keyring = request.app.state.ingestor.keyring
        survivor = await resolve_member_id(pool, id.strip(), keyring)
        trace = await analytics.member_trace(pool, survivor)
        profile = await pool.fetchrow(
            "SELECT * FROM member_profiles WHERE member_id = $1", survivor
        )
    return render(
        "member.html",
        member_id=id,
        survivor=survivor,
        trace=trace,
        profile=dict(profile) if profile else None,
        who=who,
        page="members",
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/dashboard") -> HTMLResponse:
    return render("login.html", next=next, error=None, who=None, page="login")


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("key") or [""])[0].strip()
    target = (form.get("next") or ["/dashboard"])[0]
    if not target.startswith("/dashboard"):
        target = "/dashboard"
    key = await request.app.state.verifier.verify(token) if token else None
    if key is None or "admin" not in key.scopes:
        response = render(
            "login.html",
            next=target,
            error="That is not an active admin key.",
            who=None,
            page="login",
        )
        response.status_code = 401
        return response
    lifetime = dt.timedelta(hours=DashboardSettings().session_hours)
    session = await open_session(request.app.state.store.pool, key.key_id, lifetime)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session,
        httponly=True,
        samesite="strict",
        secure=_https(request),
        path="/dashboard",
        max_age=int(lifetime.total_seconds()),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session server-side (a copy of the cookie stops working too) and drop it."""
    session = request.cookies.get(COOKIE)
    if session:
        await close_session(request.app.state.store.pool, session)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(
        COOKIE, path="/dashboard", secure=_https(request), httponly=True, samesite="strict"
    )
    return response
