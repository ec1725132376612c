"""Admission control on ingestion: beyond the in-flight slots and the queue, a request is
answered 503 with Retry-After at once, and nothing of it is stored; what was answered 200
is stored exactly once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.api.admission import AdmissionGate
from journeyman.engine.core.settings import Settings
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.event_store import PostgresEventStore
from prometheus_client import REGISTRY
from pydantic import SecretStr

from tests.ingestion.helpers import event


def batch() -> dict[str, Any]:
    return {"events": [event(id=f"adm-{uuid.uuid4().hex[:8]}") for _ in range(3)]}


async def stored_ids(store: PostgresEventStore) -> list[str]:
    rows = await store.pool.fetch("SELECT event_id FROM events")
    return [r["event_id"] for r in rows]


async def test_beyond_the_queue_ingestion_is_refused_at_once_and_nothing_accepted_is_lost(
    store: PostgresEventStore, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        secret_key=SecretStr("api-test-secret-" + "y" * 32),
        data_dir=tmp_path,
        ingest_max_in_flight=2,
        ingest_max_queued=3,
        ingest_max_queue_seconds=0,  # the held requests below must not time out
        ingest_retry_after_seconds=2,
    )
    token, _ = await create_key(store.pool, ["ingest"], name="admission")
    # Requests that get a slot are held inside the ingestor until released: the refusals
    # below are answered while every admitted request is still working.
    release = asyncio.Event()
    entered = 0
    real = Ingestor.ingest

    async def held(self: Ingestor, *args: Any, **kwargs: Any) -> Any:
        nonlocal entered
        entered += 1
        await release.wait()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Ingestor, "ingest", held)
    batches = [batch() for _ in range(12)]
    served_before = _served()
    app = create_app(settings, store, run_projector=False)
    async with (
        serve_in_background(app) as url,
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            limits=httpx.Limits(max_connections=20),
        ) as http,
    ):
        tasks = [asyncio.create_task(http.post("/v1/events", json=b)) for b in batches]
        refused = []
        for done in asyncio.as_completed(tasks):
            response = await done
            assert response.status_code == 503, response.text
            refused.append(response)
            if len(refused) == 12 - 2 - 3:
                break
        assert entered == 2, "two requests in flight, three waiting, the rest refused"
        for r in refused:
            assert r.headers["Retry-After"] == "2"
            assert r.json()["error"]["code"] == "overloaded"
        release.set()
        answers = await asyncio.gather(*tasks)
        ok = [b for b, r in zip(batches, answers, strict=True) if r.status_code == 200]
        no = [b for b, r in zip(batches, answers, strict=True) if r.status_code == 503]
        assert (len(ok), len(no)) == (5, 7), [r.status_code for r in answers]

        ids = await stored_ids(store)
        assert len(ids) == len(set(ids)) == 15
        assert set(ids) == {e["event_id"] for b in ok for e in b["events"]}

        # The refused batches, sent again, are stored (once).
        for b in no:
            r = await http.post("/v1/events", json=b)
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == 3
        ids = await stored_ids(store)
        assert len(ids) == len(set(ids)) == 36
        assert set(ids) == {e["event_id"] for b in batches for e in b["events"]}
    # The server's share of each accepted request's latency is measured; refusals are not.
    served, queued_sum = _served()
    assert served - served_before[0] == 12
    assert queued_sum > served_before[1]  # three requests waited for a slot


def _served() -> tuple[float, float]:
    """(accepted ingestion requests timed, seconds they spent queued) in this process."""
    count = REGISTRY.get_sample_value("journeyman_ingest_request_seconds_count") or 0.0
    queued = REGISTRY.get_sample_value("journeyman_ingest_queue_seconds_sum") or 0.0
    return count, queued


async def test_the_gate_hands_a_freed_slot_to_the_longest_waiting_request() -> None:
    gate = AdmissionGate(max_in_flight=1, max_queued=2)
    assert await gate.enter()
    order: list[int] = []

    async def waiter(n: int) -> None:
        assert await gate.enter()
        order.append(n)

    first = asyncio.create_task(waiter(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter(2))
    await asyncio.sleep(0)
    assert gate.queued == 2
    assert not await gate.enter(), "the queue is full: refused at once"
    gate.leave()
    await first
    assert (order, gate.in_flight, gate.queued) == ([1], 1, 1)
    gate.leave()
    await second
    gate.leave()
    assert (order, gate.in_flight, gate.queued) == ([1, 2], 0, 0)


async def test_a_request_waiting_past_its_time_is_refused_and_leaves_the_queue() -> None:
    gate = AdmissionGate(max_in_flight=1, max_queued=2, max_wait=0.05)
    assert await gate.enter()
    assert not await gate.enter(), "no slot came within max_wait"
    assert (gate.in_flight, gate.queued) == (1, 0)
    gate.leave()
    assert await gate.enter(), "a free slot is taken at once"


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    gate = AdmissionGate(max_in_flight=1, max_queued=1)
    assert await gate.enter()
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.queued == 0
    gate.leave()
    assert gate.in_flight == 0
