"""Schemathesis against the live `/openapi.json`: no 5xx, and every response matches the
documented status codes, content types and schemas."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from .conftest import Api

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


# The ingestion, member and privacy endpoints (other areas' routes have their own tests).
PATHS = (
    r"^/v1/(events|track|identify|batch|members/\{member_id\}(/events|/export|/consent)?"
    r"|consent/confirm/\{token\})$"
)


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors(api: Api, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        CHECKS,
        "--include-path-regex",
        PATHS,
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
    assert "11 selected" in text, text[-3000:]
