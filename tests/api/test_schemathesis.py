"""Schemathesis against the live `/openapi.json`: no 5xx, and every response matches the
documented status codes, content types and schemas."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from .conftest import Api
from .test_events_api import ev

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deadletters"))
from deadletter_testkit import BC_TIMESTAMP, insert_raw

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


# Every operation of the OpenAPI document: the test fails when one is added and not
# counted here, so a new endpoint cannot slip past it.
OPERATIONS = 29


async def _seed(api: Api) -> None:
    """A member with a profile, and a dead letter (id 1) for the admin operations to find."""
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [ev(id="m-1")]})
        assert r.status_code == 200, r.text
    await insert_raw(api.store, r.json()["results"][0]["member_id"], occurred_at=BC_TIMESTAMP)
    await api.project()
    count = await api.store.pool.fetchval("SELECT count(*) FROM dead_letters")
    assert count == 1


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors(api: Api, tmp_path: Path) -> None:
    await _seed(api)
    st = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {api.keys['admin']}",
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
        "--seed",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--workers",
        "1",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert f"{OPERATIONS} selected" in text, text[-3000:]
