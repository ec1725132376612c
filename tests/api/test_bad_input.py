"""Input the store could not hold or read back is refused with a 4xx naming the field:
timestamps outside the accepted range (or naive, or Unix numbers), lone surrogates, NUL
characters in identifiers, integers past Python's digit limit, non-string Segment ids."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import pytest
from journeyman.engine.ingest.file_import import import_lines, read_lines
from journeyman.engine.ingest.ingestor import Ingestor

from .conftest import Api

JSON = {"Content-Type": "application/json"}
BC = "0001-01-01T00:00:00+14:00"
LONG = "1" * 4301


def ev(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "type": "page.viewed",
        "member": {"id": "m-1"},
        "occurred_at": "2026-01-01T10:00:00+01:00",
        "properties": {"url": "/"},
        **fields,
    }


def raw(value: dict[str, Any]) -> str:
    """JSON text with `\\ud800` escapes kept (json.dumps writes lone surrogates as escapes)."""
    return json.dumps(value)


async def _events(api: Api, body: str) -> tuple[int, dict[str, Any]]:
    async with api.client() as c:
        r = await c.post("/v1/events", content=body, headers=JSON)
    assert r.status_code < 500, r.text
    return r.status_code, r.json()


def _rejected(body: dict[str, Any], i: int = 0) -> dict[str, str]:
    result = body["results"][i]
    assert result["status"] == "rejected", result
    return result["errors"][0]


async def _stored(api: Api) -> int:
    async with api.store.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM events")


@pytest.mark.parametrize(
    "when, why",
    [
        (BC, "outside the years 1 to 9999"),
        ("9999-12-31T23:59:59-14:00", "outside the years 1 to 9999"),
        ("1969-12-31T23:59:59Z", "before 1970-01-01"),
        ("2026-01-01T10:00:00", "needs a time zone"),
        (1767261600, "Unix timestamps are not accepted"),
        ("1767261600", "Unix timestamps are not accepted"),
        ("3000-01-01T00:00:00Z", "in the future"),
    ],
)
async def test_occurred_at_outside_the_range_is_refused(api: Api, when: Any, why: str) -> None:
    status, body = await _events(api, raw({"events": [ev(occurred_at=when)]}))
    assert status == 422
    error = _rejected(body)
    assert error["field"] == "events[0].occurred_at" and why in error["reason"], error
    async with api.client() as c:
        r = await c.post("/v1/track", json={"userId": "u1", "event": "Seen", "timestamp": when})
    assert r.status_code == 400, r.text
    detail = r.json()["error"]["details"][0]
    assert detail["field"] == "timestamp" and why in detail["reason"], detail
    async with api.client("admin") as c:
        r = await c.put(
            "/v1/members/m-1/consent",
            json={"changes": [{"channel": "email", "granted": False}], "occurred_at": when},
        )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "body.occurred_at"
    assert await _stored(api) == 0


async def test_the_earliest_accepted_timestamp_is_a_setting(api: Api) -> None:
    settings = api.settings.model_copy(
        update={"ingest_earliest_occurred_at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)}
    )
    ingestor = Ingestor(api.store, settings)
    result = await ingestor.ingest_raw(
        [ev(occurred_at="2019-12-31T23:59:59Z"), ev(occurred_at="2020-01-01T00:00:00Z")]
    )
    assert [r.status for r in result.results] == ["rejected", "accepted"]
    assert "2020-01-01T00:00:00+00:00, the earliest" in result.results[0].errors[0].reason


async def test_lone_surrogates_are_refused_naming_the_field(api: Api) -> None:
    status, body = await _events(
        api,
        raw(
            {
                "events": [
                    ev(properties={"note": "a\ud800b"}),
                    ev(properties={"k\udc00": 1}),
                    ev(properties={"nested": [{"x": "\ud800"}]}, member={"id": "m-2"}),
                    ev(member={"id": "m\ud800"}),
                    ev(),
                ]
            }
        ),
    )
    assert status == 200, body
    assert _rejected(body, 0)["field"] == "events[0].properties.note"
    assert "lone surrogate" in _rejected(body, 0)["reason"]
    assert _rejected(body, 1)["field"] == "events[1].properties"
    assert _rejected(body, 2)["field"] == "events[2].properties.nested[0].x"
    assert _rejected(body, 3)["field"] == "events[3].member.id"
    assert body["results"][4]["status"] == "accepted"
    assert await _stored(api) == 1

    async with api.client() as c:
        r = await c.post(
            "/v1/identify",
            content=raw({"userId": "u1", "traits": {"name": "\ud800"}}),
            headers=JSON,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == "traits.name"
        r = await c.post(
            "/v1/track", content=raw({"userId": "u1", "event": "Clicked \udfff"}), headers=JSON
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == "event"
    async with api.client("admin") as c:
        r = await c.put(
            "/v1/members/m-1/consent",
            content=raw(
                {"changes": [{"channel": "email", "granted": True}], "evidence": {"ip": "\ud800"}}
            ),
            headers=JSON,
        )
        assert r.status_code == 422, r.text
        detail = r.json()["error"]["details"][0]
        assert (
            detail["field"] == "body.evidence"
            and "ip contains a lone surrogate" in (detail["reason"])
        )
    assert await _stored(api) == 1


async def test_nul_in_identifiers_is_refused(api: Api) -> None:
    status, body = await _events(
        api,
        raw(
            {
                "events": [
                    ev(member={"email": "ann\u0000@example.com"}),
                    ev(member={"external_ids": {"shop": "81\u000023"}}),
                    ev(member={"device_id": "d\u0000"}),
                    ev(properties={"s": "a\u0000"}),
                ]
            }
        ),
    )
    assert status == 422
    fields = [_rejected(body, i)["field"] for i in range(4)]
    assert fields == [
        "events[0].member.email",
        "events[1].member.external_ids.shop",
        "events[2].member.device_id",
        "events[3].properties.s",
    ]
    assert all("NUL" in _rejected(body, i)["reason"] for i in range(4))
    assert await _stored(api) == 0


async def test_integers_past_pythons_digit_limit_are_refused_per_field(api: Api) -> None:
    good = raw(ev())
    huge = raw(ev(properties={"n": 0})).replace('"n": 0', f'"n": {LONG}')
    status, body = await _events(api, f'{{"events": [{good}, {huge}]}}')
    assert status == 200, body
    assert body["results"][0]["status"] == "accepted"
    error = _rejected(body, 1)
    assert error == {
        "field": "events[1].properties.n",
        "reason": "is an integer of 4301 digits (at most 4300)",
    }
    async with api.client() as c:
        r = await c.post(
            "/v1/track",
            content=f'{{"userId": "u1", "event": "E", "properties": {{"n": -{LONG}}}}}',
            headers=JSON,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == "properties.n"
        r = await c.post("/v1/track", content=f'{{"userId": {LONG}, "event": "E"}}', headers=JSON)
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "userId"
    async with api.client("admin") as c:
        r = await c.put(
            "/v1/members/m-1/consent",
            content=f'{{"changes": [{{"channel": "email", "granted": true}}], "n": {LONG}}}',
            headers=JSON,
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == "body"
    assert await _stored(api) == 1


@pytest.mark.parametrize("user_id", ["NaN", "Infinity", "1.5", "true", "{}"])
async def test_a_segment_user_id_must_be_a_string_or_an_integer(api: Api, user_id: str) -> None:
    async with api.client() as c:
        r = await c.post(
            "/v1/track", content=f'{{"userId": {user_id}, "event": "E"}}', headers=JSON
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0] == {
        "field": "userId",
        "reason": "must be a string or an integer",
    }
    async with api.store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM members") == 0


async def test_every_refusal_of_a_body_names_a_field(api: Api) -> None:
    async with api.client() as c:
        for body in (b"[" * 40 + b"]" * 40, b'{"events": [', b"\xff\xfe{"):
            r = await c.post("/v1/events", content=body, headers=JSON)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["details"][0]["field"] == "body"


async def test_import_lines_with_bad_input_are_rejected_not_fatal(api: Api, tmp_path) -> None:
    lines = [
        raw(ev(occurred_at=BC)),
        raw(ev(properties={"n": 0})).replace('"n": 0', f'"n": {LONG}'),
        raw(ev(properties={"s": "\ud800"})),
        raw(ev(properties={"deep": json.loads("[" * 40 + "]" * 40)})),
        raw(ev()),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejected: dict[int, list[str]] = {}
    with path.open(encoding="utf-8") as stream:
        summary = await import_lines(
            Ingestor(api.store, api.settings),
            read_lines(stream, "jsonl"),
            on_reject=lambda line, errors: rejected.update(
                {line.number: [e.field for e in errors]}
            ),
        )
    assert (summary.accepted, summary.rejected) == (1, 4)
    assert rejected == {
        1: ["events[0].occurred_at"],
        2: ["events[1].properties.n"],
        3: ["events[2].properties.s"],
        4: ["line 4"],
    }


@pytest.mark.parametrize("token", ["jm_a\x00b_secret", "jm_\x00", "jm_ab_\x00"])
async def test_an_api_key_with_a_nul_is_unauthenticated_not_an_error(api: Api, token: str) -> None:
    basic = base64.b64encode(f"{token}:".encode()).decode()
    async with api.client(None) as c:
        r = await c.post(
            "/v1/track",
            json={"userId": "u1", "event": "E"},
            headers={"Authorization": f"Basic {basic}"},
        )
    assert r.status_code == 401, r.text
