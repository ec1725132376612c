"""Personal properties of ingested events: sealed in the raw rows, readable through the
profile, the timeline and export, and unreadable everywhere once the member is erased."""

from __future__ import annotations

import base64
import json
from typing import Any

from journeyman.engine.core.settings import Settings
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.identity.sealing import SEALED, open_fields
from journeyman.engine.profiles import ProfileProjector, get_profile
from journeyman.engine.routing.dispatcher import journey_event, sealed_trigger_keys
from journeyman.engine.runtime.worker import registered_journeys
from journeyman.event_store import PostgresEventStore

from tests.ingestion.helpers import event

from .conftest import Api

MEMBER = "m-sealed"
EMAIL = "ann.sealed@example.com"
NAME = "Ann Sealwright"
STREET = "12 Hidden Lane"
PHONE = "+33612345678"
IP = "198.51.100.23"
AGENT = "Mozilla/5.0 (SealTest)"
PERSONAL = (EMAIL, NAME, STREET, PHONE, IP, AGENT, "Sealwright")


async def _ingest(api: Api) -> None:
    """An identify with personal traits, a cart and an order with a personal property each,
    over `POST /v1/events` and the Segment endpoints."""
    async with api.client("ingest") as c:
        r = await c.post(
            "/v1/events",
            json={
                "events": [
                    event(
                        "member.identified",
                        id=MEMBER,
                        email=EMAIL,
                        properties={
                            "traits": {"name": NAME, "plan": "gold"},
                            "timezone": "Europe/Paris",
                        },
                    ),
                    event(
                        "cart.updated",
                        id=MEMBER,
                        properties={
                            "cart_id": "cart-77",
                            "items": [{"sku": "sku-1", "qty": 2}],
                            "gift_message": f"for {NAME}",
                        },
                    ),
                    event(
                        "order.placed",
                        id=MEMBER,
                        properties={
                            "order_id": "order-9",
                            "total": 42.5,
                            "shipping": {"street": STREET, "city": "Lyon"},
                        },
                    ),
                ]
            },
        )
        assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
        context = {"ip": IP, "userAgent": AGENT, "library": {"name": "analytics.js"}}
        r = await c.post(
            "/v1/identify",
            json={
                "userId": MEMBER,
                "traits": {"phone": PHONE, "address": {"street": STREET}, "plan": "gold"},
                "context": context,
                "messageId": "seg-identify-1",
            },
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        r = await c.post(
            "/v1/track",
            json={
                "userId": MEMBER,
                "event": "Order Completed",
                "properties": {"order_id": "order-10", "total": 10, "note": f"call {PHONE}"},
                "context": context,
                "messageId": "seg-track-1",
            },
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


async def _raw_rows(api: Api) -> list[dict[str, Any]]:
    """The member's rows as stored, read from the table itself (data as jsonb text)."""
    rows = await api.store.pool.fetch(
        "SELECT event_id, type, data::text AS data, metadata::text AS metadata FROM events "
        "WHERE stream_id = $1 ORDER BY global_position",
        f"member-{await api.store_id(MEMBER)}",
    )
    return [dict(r) for r in rows]


async def _everything(api: Api) -> str:
    """Every event row and every profile row of the database as text."""
    return await api.store.pool.fetchval(
        "SELECT string_agg(t, ' ') FROM (SELECT data::text || metadata::text AS t FROM events "
        "UNION ALL SELECT row_to_json(p)::text FROM member_profiles p) x"
    )


def _reveals(text: str) -> list[str]:
    encoded = base64.b64encode(EMAIL.encode()).decode()
    return [s for s in (*PERSONAL, encoded) if s in text]


async def test_personal_properties_are_sealed_and_erasure_makes_them_unreadable(
    api: Api,
) -> None:
    pool = api.store.pool
    await _ingest(api)
    mid = await api.store_id(MEMBER)

    # The raw rows: personal values nowhere in plain text, allowlisted ones in clear.
    rows = await _raw_rows(api)
    assert [r["type"] for r in rows] == [
        "member.identified",
        "cart.updated",
        "order.placed",
        "member.identified",
        "order.placed",
    ]
    for r in rows:
        assert _reveals(r["data"] + r["metadata"]) == [], r
    data = [json.loads(r["data"]) for r in rows]
    assert set(data[0]) == {SEALED}  # traits and time zone
    assert data[1]["cart_id"] == "cart-77" and data[1]["items"] == [{"sku": "sku-1", "qty": 2}]
    assert data[2]["order_id"] == "order-9" and data[2]["total"] == 42.5
    assert "shipping" not in data[2] and "gift_message" not in data[1]
    assert set(data[3]) == {SEALED}
    assert data[4]["order_id"] == "order-10" and data[4]["total"] == 10
    assert _reveals(await _everything(api)) == []

    # Journeys see the clear properties only.
    [cart] = await api.store.read_stream(f"member-{mid}", 1, limit=1)
    assert journey_event(cart).data == {"cart_id": "cart-77", "items": [{"sku": "sku-1", "qty": 2}]}

    # Before erasure: profile, timeline and export show the plain values.
    await api.project()
    profile = await get_profile(pool, mid)
    assert profile is not None
    assert profile.traits == {"name": NAME, "plan": "gold", "address": {"street": STREET}}
    assert profile.timezone == "Europe/Paris"
    assert (profile.order_count, profile.monetary_value) == (2, 52.5)
    async with api.client("read") as c:
        timeline = (await c.get(f"/v1/members/{MEMBER}/events")).json()
    shown = [e["data"] for e in timeline["events"]]
    assert shown[0] == {"traits": {"name": NAME, "plan": "gold"}, "timezone": "Europe/Paris"}
    assert shown[1]["gift_message"] == f"for {NAME}" and shown[1]["cart_id"] == "cart-77"
    assert shown[2]["shipping"] == {"street": STREET, "city": "Lyon"}
    assert shown[3] == {"traits": {"address": {"street": STREET}, "plan": "gold"}}
    assert shown[4]["note"] == f"call {PHONE}"
    assert shown[4]["segment_event"] == "Order Completed"
    # Segment context (IP address, user agent) is not kept at all.
    assert IP not in json.dumps(timeline) and AGENT not in json.dumps(timeline)
    async with api.client("admin") as c:
        export = (await c.get(f"/v1/members/{MEMBER}/export")).json()
    exported = {e["event_id"]: e["data"] for e in export["events"]}
    assert [exported[e["event_id"]] for e in timeline["events"]] == shown

    events_before = await pool.fetchval("SELECT count(*) FROM events")
    raw_before = await _raw_rows(api)

    async with api.client("admin") as c:
        assert (await c.delete(f"/v1/members/{MEMBER}")).status_code == 200

    # After: the same rows, byte for byte, plus member.erased; nothing personal readable.
    assert await pool.fetchval("SELECT count(*) FROM events") == events_before + 1
    raw_after = await _raw_rows(api)
    assert raw_after[:-1] == raw_before and raw_after[-1]["type"] == "member.erased"
    assert await load_data_keys(pool, Keyring(api.settings.resolved_secret()), [mid]) == {}
    assert _reveals(await _everything(api)) == []
    profile = await get_profile(pool, mid)
    assert profile is not None and profile.erased
    assert profile.traits == {} and profile.timezone is None
    assert (profile.order_count, profile.monetary_value) == (2, 52.5)
    async with api.client("read") as c:
        timeline = (await c.get(f"/v1/members/{MEMBER}/events")).json()
    assert _reveals(json.dumps(timeline)) == []
    shown = [e["data"] for e in timeline["events"]]
    assert shown[0] == {} and shown[3] == {}
    assert shown[1] == {"cart_id": "cart-77", "items": [{"sku": "sku-1", "qty": 2}]}
    assert shown[2] == {"order_id": "order-9", "total": 42.5}
    async with api.client("admin") as c:
        export = (await c.get(f"/v1/members/{MEMBER}/export")).json()
    assert export["erased"] is True and _reveals(json.dumps(export)) == []
    assert len(export["events"]) == len(raw_after)

    # A rebuild replays the sealed rows without the key: counts stay, nothing personal.
    await ProfileProjector(api.store, api.settings).rebuild()
    profile = await get_profile(pool, mid)
    assert profile is not None and profile.erased and profile.traits == {}
    assert (profile.order_count, profile.monetary_value) == (2, 52.5)
    assert profile.timezone is None
    assert _reveals(await _everything(api)) == []
    assert await pool.fetchval("SELECT count(*) FROM events") == events_before + 1


async def test_a_merged_members_sealed_properties_stay_readable_until_erasure(api: Api) -> None:
    """The member merged away keeps its data key: the survivor's profile (also rebuilt),
    timeline of the merged stream and export still read its properties; erasing the
    survivor shreds both keys."""
    pool = api.store.pool
    async with api.client("ingest") as c:
        for member, alias, traits in (
            ("m-old", {"email": EMAIL}, {"plan": "gold"}),
            ("m-new", {"device_id": "dev-1"}, {"name": NAME}),
        ):
            r = await c.post(
                "/v1/events",
                json={
                    "events": [
                        event(
                            "member.identified", id=member, properties={"traits": traits}, **alias
                        )
                    ]
                },
            )
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        # The same person: the newer member is merged into the older one.
        r = await c.post(
            "/v1/events",
            json={"events": [event("page.viewed", email=EMAIL, device_id="dev-1")]},
        )
        old, new = await api.store_id("m-old"), await api.store_id("m-new")
        assert old == new  # merged
        assert r.json()["results"][0]["member_id"] == old, r.text
    await api.project()
    await ProfileProjector(api.store, api.settings).rebuild()
    new = (
        await api.store.pool.fetchrow("SELECT member_id FROM members WHERE merged_into = $1", old)
    )["member_id"]
    profile = await get_profile(pool, new)
    assert profile is not None and profile.member_id == old
    assert profile.traits == {"plan": "gold", "name": NAME}
    async with api.client("admin") as c:
        export = (await c.get("/v1/members/m-old/export")).json()
    assert {"name": NAME} in [e["data"].get("traits") for e in export["events"]]
    assert _reveals(await pool.fetchval("SELECT string_agg(data::text, ' ') FROM events")) == []

    async with api.client("admin") as c:
        r = await c.delete("/v1/members/m-old")
        assert r.status_code == 200 and sorted(r.json()["erased_ids"]) == sorted([old, new])
        export = (await c.get("/v1/members/m-old/export")).json()
    assert _reveals(json.dumps(export)) == []
    keys = await load_data_keys(pool, Keyring(api.settings.resolved_secret()), [old, new])
    assert keys == {}
    await ProfileProjector(api.store, api.settings).rebuild()
    profile = await get_profile(pool, old)
    assert profile is not None and profile.erased and profile.traits == {}


async def test_the_clear_list_is_a_setting(store: PostgresEventStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`JOURNEYMAN_INGEST_CLEAR_PROPERTIES` replaces the default list; `traits` stays sealed
    even when listed."""
    from journeyman.engine.ingest.ingestor import Ingestor

    from .conftest import make_settings

    settings = make_settings(tmp_path, ingest_clear_properties=["booking_id", "traits"])
    ingestor = Ingestor(store, settings)
    result = await ingestor.ingest_raw(
        [
            event(
                "booking.made",
                id="m-b",
                properties={"booking_id": "b-1", "cart_id": "c-1", "traits": {"x": 1}},
            )
        ]
    )
    assert result.accepted == 1
    mb = result.results[0].member_id
    assert mb is not None
    [stored] = await store.read_stream(f"member-{mb}")
    assert set(stored.data) == {"booking_id", SEALED}
    keys = await load_data_keys(store.pool, ingestor.keyring, [mb])
    assert open_fields(stored.data, keys[mb], stored.event_id) == {
        "booking_id": "b-1",
        "cart_id": "c-1",
        "traits": {"x": 1},
    }
    # An event with nothing personal stores its properties as sent.
    plain_result = await ingestor.ingest_raw(
        [event("booking.made", device_id="d-c", properties={"booking_id": "b"})]
    )
    mc = plain_result.results[0].member_id
    [plain] = await store.read_stream(f"member-{mc}")
    assert plain.data == {"booking_id": "b"}


def test_default_clear_list_holds_every_builtin_trigger_key() -> None:
    clear = Settings.model_fields["ingest_clear_properties"].default
    assert sealed_trigger_keys(registered_journeys(), clear) == {}
    assert sealed_trigger_keys(registered_journeys(), []) == {
        "cart_recovery": "cart_id",
        "post_purchase_survey": "order_id",
        "double_opt_in": "request_id",
    }
