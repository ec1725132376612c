"""`journeyman up` with a worker build id: its worker is a versioned build, made current, so
new runs go to it (not left waiting for an unversioned worker)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.stack import free_port
from journeyman.engine.runtime.up import Up
from journeyman.engine.runtime.worker import build_statuses, describe_deployment
from pydantic import SecretStr
from temporalio.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.devserver]


async def test_up_makes_its_worker_build_current() -> None:
    # Not under pytest's private basetemp: embedded PostgreSQL runs as its own OS user.
    root = Path(tempfile.mkdtemp(prefix="journeyman-up-build-"))
    settings = Settings(
        _env_file=None,
        data_dir=root / "data",
        secret_key=SecretStr("up-build-secret-" + "u" * 32),
        worker_build_id="b1",
        worker_deployment="shop",
    )
    said: list[tuple[str, str, str]] = []
    up = Up(
        settings,
        api_port=free_port(),
        temporal_port=free_port(),
        ui_port=free_port(),
        with_scheduler=False,
        status=lambda part, state, detail: said.append((part, state, detail)),
    )
    try:
        await up.start()
        client = await Client.connect(up.temporal_address)
        found = await describe_deployment(client, "shop")
        assert found is not None
        assert build_statuses(found[0]).get("b1") == "current"
        worker_line = next(d for p, s, d in said if p == "worker" and s == "ready")
        assert "build b1 current" in worker_line
    finally:
        await up.stop()
        shutil.rmtree(root, ignore_errors=True)
