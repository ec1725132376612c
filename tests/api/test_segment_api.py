"""The Segment-compatible endpoints, with the payload shapes of Segment's HTTP API."""

from __future__ import annotations

import base64

from journeyman.engine.identity import get_contact_points
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.identity.sealing import SEALED, open_fields

from .conftest import Api


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()}


async def test_track_identify_and_batch_map_onto_events(api: Api) -> None:
    async with api.client(None) as c:
        h = basic(api.keys["ingest"])
        r = await c.post(
            "/v1/identify",
            headers=h,
            json={
                "userId": "u-42",
                "anonymousId": "anon-1",
                "traits": {
                    "email": "Peter@Example.com",
                    "plan": "pro",
                    "timezone": "Europe/Berlin",
                },
                "timestamp": "2026-01-02T10:00:00Z",
                "messageId": "msg-1",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["success"] is True
        u42 = r.json()["results"][0]["member_id"]  # the store's id: userId is an alias
        assert u42 not in (None, "u-42") and await api.store_id("u-42") == u42
        r = await c.post(
            "/v1/track",
            headers=h,
            json={
                "anonymousId": "anon-1",
                "event": "Order Completed",
                "properties": {"total": 99.5, "order_id": "o-1"},
                "timestamp": "2026-01-02T11:00:00Z",
                "messageId": "msg-2",
            },
        )
        assert r.status_code == 200 and r.json()["results"][0]["member_id"] == u42
        r = await c.post(
            "/v1/batch",
            headers=h,
            json={
                "batch": [
                    {
                        "type": "track",
                        "userId": "u-42",
                        "event": "Wishlist Shared",
                        "messageId": "msg-3",
                        "timestamp": "2026-01-02T12:00:00Z",
                    },
                    {
                        "type": "page",
                        "userId": "u-42",
                        "name": "Home",
                        "messageId": "msg-4",
                        "properties": {"url": "https://shop.example/"},
                    },
                    {"type": "group", "userId": "u-42", "groupId": "g-1", "messageId": "msg-5"},
                    {"type": "track", "userId": "u-42", "messageId": "msg-6"},
                ],
                "context": {"library": {"name": "analytics-python"}},
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["status"] for x in body["results"]] == [
            "accepted",
            "accepted",
            "accepted",
            "rejected",
        ]
        assert body["results"][3]["errors"][0]["field"] == "batch[3].event"
        assert body["success"] is False
    events = await api.store.read_stream(f"member-{u42}")
    assert [(e.event_id, e.type) for e in events] == [
        ("msg-1", "member.identified"),
        ("msg-2", "order.placed"),
        ("msg-3", "custom.wishlist_shared"),
        ("msg-4", "page.viewed"),
        ("msg-5", "member.grouped"),
    ]
    # Traits are sealed under the member's key; the order's amount and id stay in clear.
    assert set(events[0].data) == {SEALED}
    assert events[1].data["total"] == 99.5 and events[1].data["order_id"] == "o-1"
    keyring = Keyring(api.settings.resolved_secret())
    key = (await load_data_keys(api.store.pool, keyring, [u42]))[u42]
    opened = [open_fields(e.data, key, e.event_id) for e in events]
    assert opened[0] == {"traits": {"plan": "pro"}, "timezone": "Europe/Berlin"}
    assert opened[1]["segment_event"] == "Order Completed"
    assert opened[3] == {"url": "https://shop.example/", "name": "Home"}
    points = await get_contact_points(api.store.pool, u42, keyring=keyring)
    assert points["email"] == "peter@example.com"


async def test_segment_errors_name_segment_fields_and_dedupe_by_message_id(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/v1/track", json={"userId": "u", "event": "X", "timestamp": "soon"})
        assert r.status_code == 400
        assert r.json()["error"]["details"][0]["field"] == "timestamp"
        r = await c.post("/v1/identify", json={"traits": {"email": "nope"}})
        assert r.status_code == 400
        assert r.json()["error"]["details"][0]["field"] == "traits.email"
        call = {"userId": "u", "event": "Product Viewed", "timestamp": "2026-01-01T00:00:00Z"}
        first = await c.post("/v1/track", json=call)
        second = await c.post("/v1/track", json=call)
        assert first.json()["results"][0]["status"] == "accepted"
        assert second.json()["results"][0]["status"] == "duplicate"
        r = await c.post("/v1/batch", json={"batch": "x"})
        assert r.status_code == 422
