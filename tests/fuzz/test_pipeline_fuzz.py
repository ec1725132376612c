"""Pipeline fuzz: arbitrary JSON — lone surrogates, NULs, huge integers, extreme, naive and
Unix timestamps, deep nesting, odd Unicode in every field — sent to every public endpoint of
the real API and as `journeyman ingest` lines, with the profile projection (inside the API)
and the dispatcher with a real worker running behind them.

It asserts: no 5xx; every refusal of input (400, 413, 415, 422 with a JSON body, and each
rejected event in a batch answer) names its field; and afterwards an ordinary event still
builds a profile and starts a journey, so nothing in the pipeline halted.

The bounded run (derandomised, 200 requests) is part of `make test`; the long run:

    .venv/bin/python -m pytest tests/fuzz --fuzz-long      # or JOURNEYMAN_FUZZ_LONG=1
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeyman.engine.access.keys import create_key
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.core.settings import Settings
from journeyman.engine.profiles import get_profile
from journeyman.engine.routing.dispatcher import Dispatcher
from journeyman.engine.runtime.worker import build_worker, registered_journeys
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

SECRET = "fuzz-secret-" + "f" * 40
JOURNEY = "cart_recovery"
FAST = {JOURNEY: {"quiet_period": 0.3, "coupon_delay": 0.3, "attribution_window": 1}}
INPUT_REFUSALS = frozenset({400, 413, 415, 422})
INGESTION = frozenset({"/v1/events", "/v1/track", "/v1/identify", "/v1/batch", "/v1/page"})


# ------------------------------------------------------------------------ raw JSON text
class Raw:
    """JSON text written as is: what `json.dumps` cannot produce (a 4,301-digit integer,
    NaN, 1e400, nesting deeper than the recursion limit allows to build)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(value: Any) -> str:
    """JSON text of `value`, with `Raw` parts spliced in and lone surrogates as escapes."""
    raws: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value))  # ensure_ascii: surrogates and NULs become \uXXXX escapes
    return re.sub(r'"@@raw(\d+)@@"', lambda m: raws[int(m.group(1))], text)


ODD_TEXT = [
    "\ud800",
    "a\udfffb",
    "\x00",
    "nul\x00in the middle",
    "\u212aate@example.com",
    "\uff4b\uff41\uff54\uff45@example.com",
    "ka\u200bte@example.com",
    "\ufeff",
    "\U0001f600",
    "e\u0301",
    "\u202eevil",
    "NaN",
    "",
    " ",
    "#",
    "member-",
    "x" * 300,
]
TIMESTAMPS = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-01-01T10:00:00",
    "2026-13-45T99:00:00Z",
    "yesterday",
    "1767261600",
    "-1",
    "",
]
RAW_NUMBERS = ["1" * 4301, "-" + "9" * 5000, "NaN", "Infinity", "-Infinity", "1e400", "1.5e-400"]

texts = st.one_of(
    st.sampled_from(ODD_TEXT),
    st.text(max_size=20),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Zs", "Lu", "Nd"]), max_size=8),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(RAW_NUMBERS).map(Raw),
)
deep = st.integers(min_value=20, max_value=120).map(lambda n: Raw("[" * n + "]" * n))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=10,
)


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], share: int = 8) -> Any:
    """`valid` in `share` of 10 draws (to get deep into the pipeline), else `odd`."""
    return st.integers(0, 9).flatmap(lambda i: valid if i < share else odd)


odd_objects = st.dictionaries(texts, mostly(json_values, deep, 9), max_size=5)
plain = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
objects = mostly(st.dictionaries(st.text(max_size=10), plain, max_size=4), odd_objects, 5)
now_iso = st.builds(lambda: dt.datetime.now(dt.UTC).isoformat())
timestamps = mostly(
    now_iso,
    st.one_of(
        st.sampled_from(TIMESTAMPS),
        st.sampled_from(TIMESTAMPS),
        st.integers(min_value=-(2**40), max_value=2**45),
        st.datetimes(
            min_value=dt.datetime(1, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=14))]),
        ).map(dt.datetime.isoformat),
    ),
    5,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything at all."""
    return mostly(valid, json_values)


emails = st.sampled_from(["fz1@example.com", "FZ1@Example.com", "fz2@example.com"])
ids = st.one_of(st.sampled_from(["fz-1", "fz-2"]), st.uuids().map(lambda u: f"fz-{u.hex[:8]}"))
members = mostly(
    st.one_of(st.fixed_dictionaries({"id": ids}), st.fixed_dictionaries({"email": emails})),
    st.fixed_dictionaries(
        {},
        optional={
            "id": maybe(ids),
            "email": maybe(emails),
            "phone": maybe(st.just("+14155550123")),
            "device_id": maybe(st.sampled_from(["dev-1", "dev-2"])),
            "external_ids": maybe(st.dictionaries(texts, texts, max_size=2)),
            "push_subscriptions": json_values,
        },
    ),
    7,
)
events = st.fixed_dictionaries(
    {
        "event_id": maybe(st.uuids().map(str)),
        "type": maybe(st.sampled_from(["cart.updated", "page.viewed", "order.placed"])),
        "member": members,
        "occurred_at": timestamps,
        "properties": mostly(objects, json_values, 9),
    },
)
segment_calls = st.fixed_dictionaries(
    {"userId": maybe(ids)},
    optional={
        "type": maybe(st.sampled_from(["track", "identify", "page", "screen", "alias", "group"])),
        "anonymousId": maybe(st.just("anon-1")),
        "previousId": json_values,
        "event": maybe(st.sampled_from(["Product Added", "Order Completed"])) | texts,
        "name": texts,
        "groupId": json_values,
        "properties": mostly(objects, json_values, 9),
        "traits": mostly(objects, json_values, 9),
        "context": mostly(objects, json_values, 9),
        "timestamp": timestamps,
        "messageId": maybe(st.uuids().map(str)),
    },
)
consent = st.fixed_dictionaries(
    {"changes": maybe(st.just([{"channel": "email", "granted": False}]))},
    optional={"evidence": maybe(objects), "occurred_at": timestamps, "source": json_values},
)
path_ids = mostly(ids, texts, 6)


def body_for(path: str) -> st.SearchStrategy[Any]:
    if path == "/v1/events":
        batch = st.lists(events, min_size=1, max_size=3)
        return mostly(st.fixed_dictionaries({"events": batch}), objects)
    if path == "/v1/batch":
        calls = st.lists(segment_calls, min_size=1, max_size=3)
        return mostly(st.fixed_dictionaries({"batch": calls}), objects)
    if path.startswith("/v1/") and "{" not in path:
        return segment_calls
    if path.endswith("/consent"):
        return consent
    return json_values


# ------------------------------------------------------------------------ the endpoints
def public_operations(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every operation the API documents, so an endpoint added
    later is fuzzed too. The dashboard (people, with a session) is not in the document."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/dashboard"):
            continue
        for method in operations:
            if method.upper() in ("GET", "POST", "PUT", "DELETE"):
                found.append((method.upper(), path))
    return sorted(found)


def fill(path: str, value: str) -> str:
    """The path with each parameter set to `value`, percent-encoded byte by byte (a lone
    surrogate becomes the invalid UTF-8 a client could send)."""
    quoted = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="") or "x"
    return re.sub(r"\{[^}]+\}", lambda _: quoted, path)


def check(method: str, path: str, r: httpx.Response, tally: Counter[str]) -> None:
    where = f"{method} {path} -> {r.status_code}: {r.text[:500]}"
    assert r.status_code < 500, where
    tally[str(r.status_code)] += 1
    if "json" not in r.headers.get("content-type", ""):
        return  # pages for people (unsubscribe, confirmation) and provider answers
    body = r.json()
    if r.status_code in INPUT_REFUSALS and isinstance(body, dict) and "error" in body:
        tally[f"{r.status_code} {body['error']['code']}"] += 1
        details = body["error"]["details"]
        assert details and all(d["field"] for d in details), where
    results = body.get("results") if isinstance(body, dict) else None
    for result in results or []:
        tally[str(result.get("status"))] += 1
        if result.get("status") == "rejected":
            assert result["errors"] and all(e["field"] for e in result["errors"]), where


# ------------------------------------------------------------------------ the stack
async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def pipeline(store: PostgresEventStore, client: Any) -> AsyncIterator[str]:
    """Worker + dispatcher running the cart journey over `store`."""
    found = {JOURNEY: registered_journeys()[JOURNEY]}
    task_queue = f"fuzz-{uuid.uuid4().hex[:8]}"
    async with build_worker(
        client, store, task_queue=task_queue, journeys=found, journey_settings=FAST
    ):
        dispatcher = Dispatcher(store, client, found, task_queue=task_queue, journey_settings=FAST)
        task = asyncio.create_task(dispatcher.run())
        try:
            yield task_queue
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, 10)
            assert not task.cancelled() and task.exception() is None


def fuzz_http(
    tally: Counter[str],
    url: str,
    tokens: dict[str, str],
    operations: list[tuple[str, str]],
    n: int,
    long: bool,
    lines: list[str],
) -> int:
    """Run hypothesis in this (worker) thread against the API served by the test's loop."""
    sent = 0
    http = httpx.Client(base_url=url, timeout=30)
    ingestion = st.sampled_from([op for op in operations if op[1] in INGESTION])

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=not long,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def one_request(data: st.DataObject) -> None:
        nonlocal sent
        method, path = data.draw(mostly(ingestion, st.sampled_from(operations), 6), "operation")
        target = fill(path, data.draw(path_ids, label="path id")) if "{" in path else path
        scope = data.draw(mostly(st.just("admin"), st.sampled_from(["ingest", "odd"])), "key")
        if scope == "odd":  # a forged key: odd text as HTTP Basic user name
            user = data.draw(texts, label="basic user").encode("utf-8", "surrogatepass")
            headers = {"Authorization": "Basic " + base64.b64encode(b"jm_" + user).decode()}
        else:
            headers = {"Authorization": f"Bearer {tokens[scope]}"}
        content = None
        if method in ("POST", "PUT"):
            body = data.draw(body_for(path), label="body")
            content = dumps(body).encode()
            headers["Content-Type"] = data.draw(
                mostly(st.just("application/json"), st.just("text/plain"), 9)
            )
            if path == "/v1/events" and isinstance(body, dict):
                lines.extend(dumps(e) for e in body.get("events") or [])
        r = http.request(method, target, content=content, headers=headers)
        sent += 1
        check(method, path, r, tally)

    try:
        one_request()
    finally:
        http.close()
    return sent


def run_cli_import(database_url: str, data_dir: Path, lines: list[str]) -> tuple[int, int]:
    """`journeyman ingest` over the fuzzed events as JSONL; returns (lines, rejected)."""
    rejects = data_dir / "fuzz.rejected.jsonl"
    env = {
        **os.environ,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_SECRET_KEY": SECRET,
        "JOURNEYMAN_DATA_DIR": str(data_dir),
    }
    journeyman = str(Path(sys.executable).parent / "journeyman")
    done = subprocess.run(
        [journeyman, "ingest", "-", "--format", "jsonl", "--batch-size=7", f"--rejects={rejects}"],
        input="\n".join(lines) + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    rejected = 0
    if rejects.exists():
        for row in rejects.read_text(encoding="utf-8").splitlines():
            errors = json.loads(row)["errors"]
            assert errors and all(e["field"] for e in errors), row
            rejected += 1
    return len(lines), rejected


async def test_fuzzed_input_never_halts_the_pipeline(
    temporal_dev: Any,
    store: PostgresEventStore,
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    long = bool(request.config.getoption("--fuzz-long", default=False)) or bool(
        os.environ.get("JOURNEYMAN_FUZZ_LONG")
    )
    app_settings = Settings(
        secret_key=SecretStr(SECRET),
        data_dir=tmp_path,
        ingest_max_batch_events=20,
        ingest_max_body_bytes=128 * 1024,
        ingest_rate_per_second=0,
    )
    tokens = {}
    for scope in ("ingest", "admin"):
        tokens[scope], _ = await create_key(store.pool, [scope], name=f"fuzz {scope}")
    app = create_app(app_settings, store, run_projector=True)
    app.state.temporal = temporal_dev.client
    operations = public_operations(app)
    assert ("POST", "/v1/events") in operations and ("POST", "/v1/batch") in operations
    lines: list[str] = []
    async with serve_in_background(app) as url, pipeline(store, temporal_dev.client):
        tally: Counter[str] = Counter()
        sent = await asyncio.to_thread(
            fuzz_http, tally, url, tokens, operations, 3000 if long else 200, long, lines
        )
        imported, rejected = await asyncio.to_thread(run_cli_import, database_url, tmp_path, lines)
        print(
            f"fuzz: {sent} requests over {len(operations)} operations, answers and outcomes "
            f"{dict(sorted(tally.items()))}; {imported} import lines, {rejected} rejected"
        )

        # An ordinary event still builds a profile and starts a journey.
        member = f"after-fuzz-{uuid.uuid4().hex[:6]}"
        event = {
            "event_id": uuid.uuid4().hex,
            "type": "cart.updated",
            "member": {"id": member},
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "properties": {"cart_id": "c-1", "items": [{"sku": "a", "price": 5}]},
        }
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {tokens['ingest']}"}
        ) as http:
            r = await http.post("/v1/events", json={"events": [event]})
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        member = r.json()["results"][0]["member_id"]  # the store's own id for the client's

        async def profiled() -> bool:
            return await get_profile(store.pool, member, settings=app_settings) is not None

        async def entered() -> bool:
            types = [e.type for e in await store.read_stream(f"member-{member}")]
            return "journey.entered" in types

        await eventually(profiled, "the profile of an ordinary member after the fuzz")
        await eventually(entered, "the cart journey of an ordinary member after the fuzz")
