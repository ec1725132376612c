"""Path and query parameters that PostgreSQL cannot hold (NUL) or that are not UTF-8 (an
encoded lone surrogate, a stray byte) get a 4xx naming the parameter, on every dashboard
page and API path that reads the database — never a 5xx."""

from __future__ import annotations

import pytest

from .conftest import Dash

BAD = {
    "nul": "%00",
    "nul-inside": "ab%00cd",
    "surrogate": "%ED%A0%80",
    "surrogate-inside": "ab%ED%A0%80cd",
    "not-utf8": "ab%FFcd",
}

# (method, URL with {} where the bad value goes, the parameter the error must name)
TARGETS = [
    ("GET", "/dashboard/members?id={}", "id"),
    ("GET", "/dashboard/deliveries?journey={}", "journey"),
    ("GET", "/dashboard/journeys/{}", "name"),
    ("GET", "/v1/members/{}", "member_id"),
    ("GET", "/v1/members/{}/events", "member_id"),
    ("GET", "/v1/members/m000/events?after={}", "after"),
    ("GET", "/v1/members/{}/export", "member_id"),
    ("GET", "/v1/members/{}/journeys", "member_id"),
    ("PUT", "/v1/members/{}/consent", "member_id"),
    ("DELETE", "/v1/members/{}", "member_id"),
    ("GET", "/v1/journeys/{}/stats", "name"),
    ("GET", "/v1/admin/dead-letters?consumer={}", "consumer"),
    ("GET", "/v1/admin/dead-letters?status={}", "status"),
    ("GET", "/v1/admin/dead-letters/{}", "dead_letter_id"),
    ("POST", "/v1/admin/dead-letters/{}/retry", "dead_letter_id"),
    ("POST", "/v1/admin/dead-letters/{}/drop", "dead_letter_id"),
    ("GET", "/v1/consent/confirm/{}", "token"),
    ("POST", "/v1/consent/confirm/{}", "token"),
    ("GET", "/u/{}", "token"),
    ("POST", "/u/{}", "token"),
    ("GET", "/t/c/{}", "token"),
    ("GET", "/t/o/{}.gif", "token"),
    ("POST", "/webhooks/{}", "channel"),
    ("GET", "/dashboard/members?next={}&id=m000", "next"),
]


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
async def test_bad_parameters_get_a_4xx_naming_them(dash: Dash, value: str) -> None:
    failures = []
    async with dash.client("admin") as client:
        for method, template, name in TARGETS:
            url = template.format(value)
            body = {"consent": {}} if method == "PUT" else None
            r = await client.request(method, url, json=body)
            try:
                fields = [d["field"] for d in r.json()["error"]["details"]]
            except (ValueError, KeyError, TypeError):
                fields = []
            named = any(f.split(".")[-1] == name for f in fields)
            if not (400 <= r.status_code < 500 and named):
                failures.append(f"{method} {url}: {r.status_code} {r.text[:160]}")
        # and the same pages still answer an ordinary request
        assert (await client.get("/dashboard/members?id=m000")).status_code == 200
        assert (await client.get("/dashboard/deliveries?journey=cart_recovery")).status_code == 200
        assert (await client.get("/v1/admin/dead-letters?consumer=profiles")).status_code == 200
    assert not failures, "\n".join(failures)
