"""A real API (uvicorn on a free port) over a store seeded with journey events whose funnel
numbers are known: 40 treatment entries (30 sent, 20 delivered, 10 clicked, 12 converted)
and 20 holdout entries (2 converted) of cart_recovery."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.event_store import NewEvent, PostgresEventStore
from pydantic import SecretStr

T0 = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
TREATMENT, HOLDOUT = 40, 20
SENT, DELIVERED, CLICKED, CONVERTED, HOLDOUT_CONVERTED = 30, 20, 10, 12, 2


async def seed(store: PostgresEventStore) -> None:
    batch = []
    for i in range(TREATMENT + HOLDOUT):
        holdout = i >= TREATMENT
        member, entry = f"m{i:03d}", f"e{i:03d}"
        base = {"journey": "cart_recovery", "entry_id": entry, "workflow_id": f"journey/{entry}"}
        events = [
            NewEvent(
                "journey.entered",
                {**base, "variant": "control", "holdout": holdout},
                event_id=f"{entry}-in",
                occurred_at=T0,
            )
        ]
        did = f"d{i:03d}"
        j = i - TREATMENT if holdout else i
        if holdout:
            events.append(
                NewEvent(
                    "journey.message_withheld",
                    {**base, "step": "1:reminder", "template": "cart_reminder"},
                    event_id=f"{entry}-wh",
                    occurred_at=T0,
                )
            )
        elif j < SENT:
            events.append(
                NewEvent(
                    "message.sent",
                    {
                        **base,
                        "delivery_id": did,
                        "channel": "email",
                        "step": "1:reminder",
                        "template": "cart_reminder",
                    },
                    event_id=f"{did}-sent",
                    occurred_at=T0 + dt.timedelta(hours=1),
                )
            )
            if j < DELIVERED:
                events.append(
                    NewEvent(
                        "message.delivered",
                        {"delivery_id": did, "channel": "email"},
                        event_id=f"{did}-dl",
                        occurred_at=T0 + dt.timedelta(hours=1),
                    )
                )
            if j < CLICKED:
                events.append(
                    NewEvent(
                        "message.clicked",
                        {"delivery_id": did, "channel": "email"},
                        event_id=f"{did}-ck",
                        occurred_at=T0 + dt.timedelta(hours=2),
                    )
                )
        if (not holdout and j < CONVERTED) or (holdout and j < HOLDOUT_CONVERTED):
            events.append(
                NewEvent(
                    "journey.converted",
                    {
                        **base,
                        "goal": "order.placed",
                        "value": 50.0,
                        "holdout": holdout,
                        "at": (T0 + dt.timedelta(hours=3)).isoformat(),
                        "delivery_id": None if holdout or j >= SENT else did,
                    },
                    event_id=f"{entry}-cv",
                    occurred_at=T0 + dt.timedelta(hours=3),
                )
            )
        batch.append((f"member-{member}", events, None))
    from journeyman.event_store import ANY

    await store.append_batch([(s, evs, ANY) for s, evs, _ in batch])


@dataclass
class Dash:
    url: str
    keys: dict[str, str]

    def client(self, scope: str | None = "read", **kw) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, **kw)


async def _serve(store: PostgresEventStore, tmp_path, local_only: bool) -> AsyncIterator[Dash]:  # type: ignore[no-untyped-def]
    settings = Settings(secret_key=SecretStr("dash-test-secret-" + "z" * 32), data_dir=tmp_path)
    keys = {}
    for scope in ("ingest", "read", "admin"):
        keys[scope], _ = await create_key(store.pool, [scope], name=f"test {scope}")
    app = create_app(settings, store, run_projector=False)
    app.state.dashboard_local_only = local_only
    async with serve_in_background(app) as url:
        yield Dash(url, keys)


@pytest.fixture
async def dash(store: PostgresEventStore, tmp_path) -> AsyncIterator[Dash]:  # type: ignore[no-untyped-def]
    """The API with the dashboard behind an admin key (the production default)."""
    await seed(store)
    async for d in _serve(store, tmp_path, local_only=False):
        yield d


@pytest.fixture
async def local_dash(store: PostgresEventStore, tmp_path) -> AsyncIterator[Dash]:  # type: ignore[no-untyped-def]
    """The API with local access to the dashboard allowed (what `journeyman up` runs)."""
    await seed(store)
    async for d in _serve(store, tmp_path, local_only=True):
        yield d
