"""A short-lived command that used a Temporal client exits 0, every time.

Ending such a process through the interpreter's own teardown aborts it now and then (SIGABRT,
"Fatal Python error: PyGILState_Release", sometimes SIGSEGV): the Temporal SDK's Rust
threads may still hold the GIL when Python finalises. Here about one plain run in three
failed; that is how `journeyman up` failed with "scheduler exited with -6".
"""

from __future__ import annotations

import asyncio
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.devserver]

RUNS, AT_ONCE = 12, 3

# A command shaped like `journeyman scheduler`: one RPC, then the process ends.
ONE_RPC = """
import asyncio, sys, typer
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from journeyman.engine.cli.process_exit import run_command

app = typer.Typer()

@app.command()
def describe(address: str) -> None:
    async def go() -> None:
        client = await Client.connect(address)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    asyncio.run(go())
    print("described")

run_command(app)
"""


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def _address(temporal_dev) -> str:  # type: ignore[no-untyped-def]
    return temporal_dev.client.service_client.config.target_host


async def test_a_command_that_used_temporal_exits_0_every_time(temporal_dev) -> None:  # type: ignore[no-untyped-def]
    address = _address(temporal_dev)
    gate = asyncio.Semaphore(AT_ONCE)

    async def once() -> tuple[int, str]:
        async with gate:
            return await _run("-c", ONE_RPC, address)

    results = await asyncio.gather(*(once() for _ in range(RUNS)))
    failed = [(code, out[-600:]) for code, out in results if code != 0 or "described" not in out]
    assert failed == []


async def test_journeyman_scheduler_exits_0_after_an_orderly_shutdown(temporal_dev) -> None:  # type: ignore[no-untyped-def]
    import os

    env = {
        **os.environ,
        "JOURNEYMAN_TEMPORAL_ADDRESS": _address(temporal_dev),
        "JOURNEYMAN_SECRET_KEY": "process-exit-secret-" + "p" * 32,
    }
    code, out = await _run(
        "-c",
        # atexit handlers (the embedded PostgreSQL's cleanup among them) still run.
        "import atexit; atexit.register(print, 'atexit handlers ran'); "
        "from journeyman.engine.cli import main; main()",
        "scheduler",
        "--every",
        "3600",
        env=env,
    )
    assert code == 0, out
    assert "schedule journeyman-inactivity-scan" in out
    assert out.rstrip().endswith("atexit handlers ran")
