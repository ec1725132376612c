"""`POST /v1/events` and the member endpoints over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from .conftest import Api


def ev(**member: object) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page.viewed",
        "member": member or {"id": "m-1"},
        "occurred_at": "2026-01-01T10:00:00+01:00",
        "properties": {"url": "/"},
    }


async def test_batch_outcomes_accepted_duplicate_rejected(api: Api) -> None:
    good = ev(email="Ann@Example.com")
    bad = {**ev(), "occurred_at": "yesterday"}
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [good, bad]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["status"] for x in body["results"]] == ["accepted", "rejected"]
        assert body["results"][1]["errors"][0]["field"] == "events[1].occurred_at"
        assert (body["accepted"], body["rejected"]) == (1, 1)
        again = await c.post("/v1/events", json={"events": [good]})
        assert again.json()["results"][0]["status"] == "duplicate"
        assert (
            again.json()["results"][0]["global_position"] == body["results"][0]["global_position"]
        )
        all_bad = await c.post("/v1/events", json={"events": [bad]})
        assert all_bad.status_code == 422
        assert all_bad.json()["rejected"] == 1
    member = body["results"][0]["member_id"]
    events = await api.store.read_stream(f"member-{member}")
    assert [e.event_id for e in events] == [good["event_id"]]


async def test_unstorable_numbers_and_nul_are_rejected_per_event(api: Api) -> None:
    good = json.dumps(ev(id="m-9"))
    huge = json.dumps(ev(id="m-9")).replace('"url": "/"', '"big": 1e400')
    nul = json.dumps(ev(id="m-9")).replace('"url": "/"', '"s": "a\\u0000b"')
    body = f'{{"events": [{good}, {huge}, {nul}]}}'
    async with api.client() as c:
        r = await c.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "rejected"]
    assert results[1]["errors"][0] == {
        "field": "events[1].properties.big",
        "reason": "is not a finite number (NaN and infinities cannot be stored)",
    }
    assert "NUL" in results[2]["errors"][0]["reason"]
    assert len(await api.store.read_stream(f"member-{results[0]['member_id']}")) == 1


async def test_auth_401_and_403(api: Api) -> None:
    batch = {"events": [ev()]}
    async with api.client(None) as c:
        r = await c.post("/v1/events", json=batch)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        r = await c.post(
            "/v1/events", json=batch, headers={"Authorization": "Bearer jm_nothing_real"}
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        forged = api.keys["admin"][:-3] + "xyz"
        r = await c.post("/v1/events", json=batch, headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
    async with api.client("read") as c:
        r = await c.post("/v1/events", json=batch)
        assert r.status_code == 403 and "'ingest'" in r.json()["error"]["message"]
    async with api.client("ingest") as c:
        r = await c.get("/v1/members/m-1")
        assert r.status_code == 403
    async with api.client("admin") as c:
        r = await c.post("/v1/events", json=batch)
        assert r.status_code == 200
    async with api.store.pool.acquire() as conn:
        hashes = await conn.fetch("SELECT encode(secret_hash, 'hex') AS h FROM api_keys")
    assert all(len(h["h"]) == 64 for h in hashes)
    assert not any(api.keys["admin"].split("_")[-1] in h["h"] for h in hashes)


async def test_limits_and_malformed_bodies(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [ev() for _ in range(51)]})
        assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
        big = {"events": [{**ev(), "properties": {"blob": "x" * 70_000}}]}
        r = await c.post("/v1/events", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = await c.post("/v1/events", content=b"events=1", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = await c.post(
            "/v1/events", content=b'{"events": [', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and "line 1" in r.json()["error"]["message"]
        r = await c.post("/v1/events", json=[1, 2])
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body"
        r = await c.post("/v1/events", json={"events": [], "extra": 1})
        assert r.status_code == 422
        assert {d["field"] for d in r.json()["error"]["details"]} == {"extra", "events"}
        r = await c.post("/v1/events", json={"events": ["nope", {**ev(), "member": {}}]})
        assert r.status_code == 422
        assert [x["errors"][0]["field"] for x in r.json()["results"]] == [
            "events[0]",
            "events[1].member",
        ]
    async with api.store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_profile_and_paged_timeline(api: Api) -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    events = [
        {
            **ev(id="m-7"),
            "type": "order.placed",
            "properties": {"total": 10 * (i + 1)},
            "occurred_at": (when + dt.timedelta(hours=i)).isoformat(),
        }
        for i in range(5)
    ]
    async with api.client() as c:
        assert (await c.post("/v1/events", json={"events": events})).status_code == 200
    await api.project()
    async with api.client("read") as c:
        p = await c.get("/v1/members/m-7")
        assert p.status_code == 200, p.text
        assert p.json()["order_count"] == 5 and p.json()["monetary_value"] == 150
        page1 = (await c.get("/v1/members/m-7/events", params={"limit": 3})).json()
        assert [e["data"]["total"] for e in page1["events"]] == [10, 20, 30]
        page2 = (
            await c.get("/v1/members/m-7/events", params={"after": page1["next_after"]})
        ).json()
        assert [e["data"]["total"] for e in page2["events"]] == [40, 50]
        assert page2["next_after"] is None
        missing = await c.get("/v1/members/nobody")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        bad = await c.get("/v1/members/m-7/events", params={"limit": "lots"})
        assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"].endswith(
            "limit"
        )


async def test_openapi_is_served(api: Api) -> None:
    async with api.client(None) as c:
        spec = (await c.get("/openapi.json")).json()
    assert {"/v1/events", "/v1/track", "/v1/identify", "/v1/batch"} <= set(spec["paths"])
    assert "EventIn" in spec["components"]["schemas"]
    json.dumps(spec)
