"""`journeyman up`: the whole engine on one machine, as one process tree.

Parts start in order, each with a readiness check, and each prints one status line:

1. PostgreSQL — embedded (data under `<data_dir>/postgres`) unless
   `JOURNEYMAN_DATABASE_URL` points elsewhere;
2. Temporal — the dev server with its web UI (history in `<data_dir>/temporal`) unless
   `JOURNEYMAN_TEMPORAL_ADDRESS` points at a cluster;
3. migrations;
4. worker (`journeyman worker`) — ready when Temporal sees it polling the task queue;
5. dispatcher (`journeyman dispatcher`) — ready when its `/healthz` answers;
6. scheduler (`journeyman scheduler`) — the inactivity-scan Schedule created or updated;
7. API and dashboard (`journeyman api`) — ready when `/healthz` answers.

Worker, dispatcher and API are child processes running the very commands an operator runs
separately in production, pointed at the same database and Temporal by environment
variables; their logs go to `<data_dir>/logs/`. Ctrl-C or SIGTERM stops them in reverse
order (SIGINT first, so each finishes what it is doing), then Temporal and PostgreSQL. State
stays in the data directory, so the next `journeyman up` continues where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from engine.settings import Settings
from engine.stack import EmbeddedPostgres, TemporalDevServer, free_port

StatusFn = Callable[[str, str, str], None]


def port_or_free(preferred: int) -> int:
    """`preferred` when it is free on 127.0.0.1, else any free port (0 means any)."""
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    return free_port()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None


class PartFailed(RuntimeError):
    pass


@dataclass
class Up:
    """The running system. `await up.start()`, then `await up.wait()` until a signal or a
    part dies, then `await up.stop()`. Also an async context manager."""

    settings: Settings
    api_port: int = 0
    temporal_port: int = 7233
    ui_port: int = 8233
    local_dashboard: bool = True
    extra_env: Mapping[str, str] = field(default_factory=dict)
    status: StatusFn | None = None
    scan_every: float | None = None
    with_scheduler: bool = True
    """False: call `start_scheduler()` later (e.g. after importing history)."""

    database_url: str = ""
    temporal_address: str = ""
    temporal_ui: str | None = None
    api_url: str = ""
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    children: list[Child] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def _say(self, part: str, state: str, detail: str) -> None:
        if self.status is not None:
            self.status(part, state, detail)

    # ------------------------------------------------------------------ start
    async def start(self) -> Up:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start(self) -> None:
        from engine.db import asyncpg_dsn, migrate

        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)

        t = time.perf_counter()
        if self.settings.database_url:
            self.database_url = asyncpg_dsn(self.settings.database_url)
            self._say("postgres", "external", _redact(self.database_url))
        else:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            self.database_url = await asyncio.to_thread(self.postgres.start)
            self._say(
                "postgres",
                "ready",
                f"embedded, data in {self.postgres.data_dir} ({time.perf_counter() - t:.1f} s)",
            )

        t = time.perf_counter()
        if self.settings.temporal_address:
            self.temporal_address = self.settings.temporal_address
            self._say("temporal", "external", self.temporal_address)
        else:
            self.temporal = TemporalDevServer(
                self.data_dir / "temporal",
                namespace=self.settings.temporal_namespace,
                port=port_or_free(self.temporal_port),
                ui_port=port_or_free(self.ui_port),
                headless=False,
            )
            self.temporal_address = await asyncio.to_thread(self.temporal.start)
            self.temporal_ui = self.temporal.ui_url
            self._say(
                "temporal",
                "ready",
                f"dev server {self.temporal_address}, web UI {self.temporal_ui}, "
                f"history in {self.temporal.data_dir} ({time.perf_counter() - t:.1f} s)",
            )

        t = time.perf_counter()
        await migrate(self.database_url)
        self._say("migrations", "ready", f"schema at head ({time.perf_counter() - t:.1f} s)")

        worker_metrics, temporal_metrics = free_port(), free_port()
        t = time.perf_counter()
        worker = self._spawn(
            "worker",
            ["worker"],
            {
                "JOURNEYMAN_METRICS_PORT": str(worker_metrics),
                "JOURNEYMAN_TEMPORAL_METRICS_PORT": str(temporal_metrics),
            },
        )
        worker.url = f"http://127.0.0.1:{worker_metrics}"
        await self._until(worker, self._worker_polling, 60)
        build = ""
        if self.settings.worker_build_id:
            # The one worker here is the build to run: make it current, or new runs would
            # wait for a worker that is not versioned.
            build = f"build {await self._make_build_current()} current; "
        self._say(
            "worker",
            "ready",
            f"task queue {self.settings.task_queue}; {build}health {worker.url}/healthz, "
            f"Temporal SDK metrics http://127.0.0.1:{temporal_metrics}/metrics "
            f"({time.perf_counter() - t:.1f} s)",
        )

        t = time.perf_counter()
        dispatcher_metrics = free_port()
        dispatcher = self._spawn(
            "dispatcher", ["dispatcher"], {"JOURNEYMAN_METRICS_PORT": str(dispatcher_metrics)}
        )
        dispatcher.url = f"http://127.0.0.1:{dispatcher_metrics}"
        await self._until(dispatcher, lambda: _healthy(f"{dispatcher.url}/healthz"), 60)
        self._say(
            "dispatcher",
            "ready",
            f"health {dispatcher.url}/healthz ({time.perf_counter() - t:.1f} s)",
        )

        if self.with_scheduler:
            await self.start_scheduler()

        t = time.perf_counter()
        port = port_or_free(self.api_port)
        api = self._spawn(
            "api",
            ["api", "--host", "127.0.0.1", "--port", str(port)],
            {"JOURNEYMAN_DASHBOARD_LOCAL_ONLY": "true" if self.local_dashboard else "false"},
        )
        self.api_url = api.url = f"http://127.0.0.1:{port}"
        await self._until(api, lambda: _healthy(f"{self.api_url}/healthz"), 60)
        access = "local access without a key" if self.local_dashboard else "admin key"
        self._say(
            "api",
            "ready",
            f"{self.api_url}  dashboard {self.api_url}/dashboard ({access}), "
            f"metrics {self.api_url}/metrics ({time.perf_counter() - t:.1f} s)",
        )

    async def start_scheduler(self) -> None:
        """Create or update the inactivity-scan Schedule (`journeyman scheduler`)."""
        t = time.perf_counter()
        every = self.scan_every or self.settings.inactivity_scan_every_seconds
        scheduler = self._spawn("scheduler", ["scheduler", "--every", f"{every:g}"], {})
        code = await asyncio.to_thread(scheduler.process.wait, 60)
        self.children.remove(scheduler)
        if code != 0:
            raise PartFailed(f"scheduler exited with {code}; see {scheduler.log}")
        self._say(
            "scheduler",
            "ready",
            f"inactivity scan every {every:g} s ({time.perf_counter() - t:.1f} s)",
        )

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "JOURNEYMAN_DATABASE_URL": self.database_url,
                "JOURNEYMAN_TEMPORAL_ADDRESS": self.temporal_address,
                "JOURNEYMAN_TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
                "JOURNEYMAN_DATA_DIR": str(self.data_dir.resolve()),
                "JOURNEYMAN_TASK_QUEUE": self.settings.task_queue,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.settings.worker_build_id:
            env["JOURNEYMAN_WORKER_BUILD_ID"] = self.settings.worker_build_id
            if self.settings.worker_deployment:
                env["JOURNEYMAN_WORKER_DEPLOYMENT"] = self.settings.worker_deployment
        if self.settings.secret_key is None:
            # Every part must sign and blind-index with the same secret.
            env["JOURNEYMAN_SECRET_KEY"] = self.settings.resolved_secret().decode()
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> Child:
        log = self.data_dir / "logs" / f"{name}.log"
        out = open(log, "ab")
        out.write(f"\n--- {name} starting {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        out.flush()
        process = subprocess.Popen(
            [sys.executable, "-c", "from engine.cli import main; main()", *args],
            env={**self.child_env(), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches `up`, which stops parts in order
        )
        out.close()
        child = Child(name, process, log)
        self.children.append(child)
        return child

    async def _until(self, child: Child, ready: Callable[[], Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise PartFailed(
                    f"{child.name} exited with {child.process.returncode} while starting; "
                    f"see {child.log}"
                )
            try:
                if await ready():
                    return
            except Exception:
                pass
            await asyncio.sleep(0.2)
        raise PartFailed(f"{child.name} was not ready within {timeout:.0f} s; see {child.log}")

    async def _make_build_current(self) -> str:
        from temporalio.client import Client

        from engine.worker import deployment_name, set_current_build

        build_id = self.settings.worker_build_id
        assert build_id is not None
        client = await Client.connect(
            self.temporal_address, namespace=self.settings.temporal_namespace
        )
        await set_current_build(client, deployment_name(self.settings), build_id, wait=60)
        return build_id

    async def _worker_polling(self) -> bool:
        return await task_queue_has_poller(
            self.temporal_address, self.settings.temporal_namespace, self.settings.task_queue
        )

    # ------------------------------------------------------------------ run and stop
    async def wait(self) -> str:
        """Until a signal asks to stop (returns 'stopped') or a part exits (raises)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stopping.set)
        while not self._stopping.is_set():
            for child in self.children:
                if child.process.poll() is not None:
                    raise PartFailed(
                        f"{child.name} exited with {child.process.returncode}; see {child.log}"
                    )
            if self.temporal is not None and self.temporal.process is not None:
                if self.temporal.process.poll() is not None:
                    raise PartFailed("the Temporal dev server exited; see its temporal.log")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 1.0)
        return "stopped"

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        for child in reversed(self.children):
            await asyncio.to_thread(_stop_process, child.process)
            self._say(child.name, "stopped", "")
        self.children.clear()
        if self.temporal is not None:
            await asyncio.to_thread(self.temporal.stop)
            self.temporal = None
            self._say("temporal", "stopped", "")
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
            self.postgres = None
            self._say("postgres", "stopped", "")

    async def __aenter__(self) -> Up:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait(5)


async def _healthy(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        r = await client.get(url)
        return r.status_code == 200


async def task_queue_has_poller(address: str, namespace: str, task_queue: str) -> bool:
    """Does Temporal see a worker polling `task_queue` for workflow tasks?"""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url
