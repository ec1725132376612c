"""A member with an event the store cannot read back: timeline, export and erasure answer
(never 500), and the admin API lists, shows, retries and drops the dead letter."""

from __future__ import annotations

import sys
from pathlib import Path

from .conftest import Api
from .test_events_api import ev

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deadletters"))
from deadletter_testkit import BC_TIMESTAMP, insert_raw


async def test_undecodable_event_of_a_member(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [ev(id="m-1"), ev(id="m-2")]})
        assert r.status_code == 200, r.text
    member = r.json()["results"][0]["member_id"]
    bad = await insert_raw(api.store, member, occurred_at=BC_TIMESTAMP)
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [ev(id="m-1")]})
        assert r.status_code == 200, r.text
    await api.project()

    async with api.client("read") as c:
        r = await c.get(f"/v1/members/{member}/events", params={"limit": 2})
        assert r.status_code == 200, r.text
        page = r.json()
        assert [e["stream_version"] for e in page["events"]] == [0]
        assert [u["global_position"] for u in page["undecodable"]] == [bad]
        assert "date value out of range" in page["undecodable"][0]["error"]
        assert page["next_after"] == 1
        r = await c.get(f"/v1/members/{member}/events", params={"after": 1})
        assert [e["stream_version"] for e in r.json()["events"]] == [2]
        assert r.json()["undecodable"] == [] and r.json()["next_after"] is None
        r = await c.get("/v1/admin/dead-letters")
        assert r.status_code == 403

    async with api.client("admin") as c:
        r = await c.get(f"/v1/members/{member}/export")
        assert r.status_code == 200, r.text
        assert [u["global_position"] for u in r.json()["undecodable_events"]] == [bad]
        assert len(r.json()["events"]) == 2

        r = await c.get("/v1/admin/dead-letters")
        assert r.status_code == 200, r.text
        (dl,) = r.json()["dead_letters"]
        assert (dl["consumer"], dl["global_position"]) == ("member_profiles", bad)
        r = await c.get(f"/v1/admin/dead-letters/{dl['id']}")
        assert r.json()["event"]["raw"]["occurred_at"].endswith("BC")
        r = await c.post(f"/v1/admin/dead-letters/{dl['id']}/retry")
        assert r.status_code == 200 and r.json()["ok"] is False
        assert r.json()["dead_letter"]["attempts"] == 2
        r = await c.post(f"/v1/admin/dead-letters/{dl['id']}/drop", json={"reason": "bad clock"})
        assert r.json()["dead_letter"]["status"] == "dropped"
        assert r.json()["dead_letter"]["resolution"] == "bad clock"
        r = await c.get("/v1/admin/dead-letters")
        assert r.json()["dead_letters"] == []
        r = await c.post("/v1/admin/dead-letters/999/drop")
        assert r.status_code == 404
        for bad_request in (
            c.get("/v1/admin/dead-letters", params={"status": "lost"}),
            c.get("/v1/admin/dead-letters", params={"limit": 0}),
            c.get("/v1/admin/dead-letters/x"),
            c.post("/v1/admin/dead-letters/0/retry"),
            c.post(f"/v1/admin/dead-letters/{dl['id']}/drop", json={"reason": 5}),
        ):
            r = await bad_request
            assert r.status_code == 422, r.text
            assert r.json()["error"]["details"][0]["field"], r.text

        r = await c.delete(f"/v1/members/{member}")
        assert r.status_code == 200, r.text
    async with api.client("read") as c:
        other = (await c.get("/v1/members/m-2")).json()
        assert other.get("member_id"), other


async def test_journey_trace_answers_with_an_undecodable_consent_event(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [ev(id="m-3")]})
    member = r.json()["results"][0]["member_id"]
    await insert_raw(
        api.store,
        member,
        "member.consent_changed",
        occurred_at=BC_TIMESTAMP,
        data_sql='\'{"channel": "email", "granted": false}\'::jsonb',
    )
    async with api.client("read") as c:
        r = await c.get(f"/v1/members/{member}/journeys")
    assert r.status_code == 200, r.text
    (step,) = r.json()["trace"]
    assert step["type"] == "member.consent_changed" and step["at"].endswith("BC")
