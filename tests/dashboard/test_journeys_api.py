"""`/v1/journeys`, `/v1/journeys/{name}/stats`, `/v1/members/{id}/journeys`, `/metrics`,
`/healthz` and the dashboard's access rules, over real HTTP against a seeded store."""

from __future__ import annotations

import re

import pytest
from journeyman.engine.analytics.stats import rate_difference

from .conftest import (
    CLICKED,
    CONVERTED,
    DELIVERED,
    HOLDOUT,
    HOLDOUT_CONVERTED,
    SENT,
    TREATMENT,
)


async def test_journeys_list_needs_read_scope_and_reports_the_seeded_funnel(dash) -> None:
    async with dash.client(None) as anon:
        assert (await anon.get("/v1/journeys")).status_code == 401
    async with dash.client("ingest") as ingest:
        assert (await ingest.get("/v1/journeys")).status_code == 403
    async with dash.client("read") as c:
        r = await c.get("/v1/journeys")
    assert r.status_code == 200
    by_name = {j["name"]: j for j in r.json()}
    # every built-in journey is listed, with or without entries
    assert {"cart_recovery", "welcome", "winback", "post_purchase_survey"} <= set(by_name)
    cart = by_name["cart_recovery"]
    assert cart["registered"] and cart["trigger"] == "cart.updated"
    assert cart["stats"]["total"]["entered"] == TREATMENT + HOLDOUT
    assert cart["stats"]["treatment"]["converted"] == CONVERTED
    assert by_name["welcome"]["stats"]["total"]["entered"] == 0


async def test_journey_stats_funnel_and_lift(dash) -> None:
    async with dash.client("read") as c:
        r = await c.get("/v1/journeys/cart_recovery/stats")
        missing = await c.get("/v1/journeys/no_such_journey/stats")
    assert r.status_code == 200
    s = r.json()
    t, h = s["treatment"], s["holdout"]
    assert (t["entered"], t["messaged"], t["delivered"], t["clicked"], t["converted"]) == (
        TREATMENT,
        SENT,
        DELIVERED,
        CLICKED,
        CONVERTED,
    )
    assert (h["entered"], h["messaged"], h["converted"]) == (HOLDOUT, HOLDOUT, HOLDOUT_CONVERTED)
    expected = rate_difference(CONVERTED, TREATMENT, HOLDOUT_CONVERTED, HOLDOUT)
    lift = s["lift"]["conversion_rate"]
    assert lift["estimate"] == pytest.approx(0.2)
    assert (lift["low"], lift["high"]) == pytest.approx((expected.low, expected.high))
    assert s["channels"]["email"] == {"sent": SENT, "delivered": DELIVERED, "clicked": CLICKED}
    assert missing.status_code == 404
    assert "no_such_journey" in missing.json()["error"]["message"]


async def test_member_trace_explains_each_step(dash) -> None:
    async with dash.client("read") as c:
        treated = (await c.get("/v1/members/m000/journeys")).json()
        held = (await c.get(f"/v1/members/m{TREATMENT:03d}/journeys")).json()
        missing = await c.get("/v1/members/nobody/journeys")
    assert [e["type"] for e in treated["trace"]] == [
        "journey.entered",
        "message.sent",
        "message.delivered",
        "message.clicked",
        "journey.converted",
    ]
    assert "sent by email" in treated["trace"][1]["explanation"]
    assert held["trace"][1]["type"] == "journey.message_withheld"
    assert "holdout" in held["trace"][1]["explanation"]
    assert missing.status_code == 404


async def test_metrics_report_store_figures_and_health(dash) -> None:
    async with dash.client(None) as c:
        metrics = (await c.get("/metrics")).text
        health = await c.get("/healthz")
    entered = re.search(
        r'journeyman_journeys_entered_total\{journey="cart_recovery"\} (\S+)', metrics
    )
    assert entered and float(entered.group(1)) == TREATMENT + HOLDOUT
    converted = re.search(
        r'journeyman_journeys_converted_total\{journey="cart_recovery"\} (\S+)', metrics
    )
    assert converted and float(converted.group(1)) == CONVERTED + HOLDOUT_CONVERTED
    sent = re.search(r'journeyman_messages_total\{channel="email",outcome="sent"\} (\S+)', metrics)
    assert sent and float(sent.group(1)) == SENT
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_dashboard_needs_an_admin_key_unless_local_access_is_on(dash) -> None:
    async with dash.client(None) as anon:
        r = await anon.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    async with dash.client("read") as reader:  # a read key is not enough
        assert (await reader.get("/dashboard")).status_code == 303
    async with dash.client("admin") as admin:
        r = await admin.get("/dashboard")
        assert r.status_code == 200 and "cart_recovery" in r.text
    async with dash.client(None) as browser:
        bad = await browser.post(
            "/dashboard/login",
            content="key=jm_nope&next=/dashboard",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert bad.status_code == 401
        ok = await browser.post(
            "/dashboard/login",
            content=f"key={dash.keys['admin']}&next=/dashboard/deliveries",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/deliveries"
        page = await browser.get("/dashboard/deliveries")  # the cookie now admits it
        assert page.status_code == 200 and "message.sent" in page.text


async def test_local_access_opens_the_dashboard_without_a_key(local_dash) -> None:
    async with local_dash.client(None) as anon:
        r = await anon.get("/dashboard/members", params={"id": "m000"})
    assert r.status_code == 200
    assert "local access" in r.text and "journey.converted" in r.text
