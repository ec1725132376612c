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
variables; their logs go to `<data_dir>/logs/`. State stays in the data directory, so the
next `journeyman up` continues where this one stopped.

Lifetime (see `journeyman.engine.runtime.up_lock` and `journeyman.engine.runtime.lifeline`): one
`up` per data directory (an OS
file lock); SIGINT, SIGTERM or SIGHUP — during startup too — stop every part within a few
seconds (worker, dispatcher and API together with SIGINT, then Temporal and PostgreSQL;
what has not finished after `stop_grace` is killed; a second signal kills at once); and if
`up` itself is killed, its parts notice and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.lifeline import die_with_parent, watchdog_command
from journeyman.engine.runtime.stack import EmbeddedPostgres, TemporalDevServer, free_port
from journeyman.engine.runtime.up_lock import DataDirLock

from .processes import (
    PartFailed,
    PortTaken,
    claim_port,
    dismiss_watchdog,
    healthy,
    pick_port,
    redact,
    stop_process,
    task_queue_has_poller,
)

StatusFn = Callable[[str, str, str], None]

# Ctrl-C in a terminal (or SIGINT to a backgrounded `up`, which the shell started with
# SIGINT ignored — an ignored signal stays ignored across exec) must reach each part's
# Python default handler, so every part restores it first.
_PART_MAIN = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from journeyman.engine.cli import main; main()"
)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None


@dataclass
class Up:
    """The running system. `await up.start()`, then `await up.wait()` until a signal or a
    part dies, then `await up.stop()`. Also an async context manager."""

    settings: Settings
    api_port: int = 0
    """The API's port; 0 picks a free one. A taken port is refused."""
    temporal_port: int | None = None
    """Temporal's frontend port; None: 7233 when free, else any (a given port must be free)."""
    ui_port: int | None = None
    """Temporal web UI port; None: 8233 when free, else any (a given port must be free)."""
    local_dashboard: bool = True
    extra_env: Mapping[str, str] = field(default_factory=dict)
    status: StatusFn | None = None
    scan_every: float | None = None
    with_scheduler: bool = True
    """False: call `start_scheduler()` later (e.g. after importing history)."""
    stop_grace: float = 2.0
    """Seconds each part gets to finish after SIGINT before it is killed."""

    database_url: str = ""
    temporal_address: str = ""
    temporal_ui: str | None = None
    api_url: str = ""
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    children: list[Child] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: DataDirLock | None = field(default=None, init=False, repr=False)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _postgres_starting: asyncio.Future[str] | None = field(default=None, init=False, repr=False)
    _start_task: asyncio.Task[Any] | None = field(default=None, init=False, repr=False)
    _stop_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _hurry: bool = field(default=False, init=False, repr=False)
    _stopping_children: list[Child] = field(default_factory=list, init=False, repr=False)
    _signals: tuple[int, ...] = field(default=(), init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def _say(self, part: str, state: str, detail: str) -> None:
        if self.status is not None:
            self.status(part, state, detail)

    # ------------------------------------------------------------------ signals
    def catch_signals(self) -> None:
        """Stop on SIGINT, SIGTERM and SIGHUP from now on — during `start()` too, which a
        signal cancels. A second signal kills the parts instead of waiting for them."""
        if self._signals:
            return
        loop = asyncio.get_running_loop()
        caught = []
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal)
                caught.append(int(sig))
        self._signals = tuple(caught)

    def _on_signal(self) -> None:
        if self._stopping.is_set():
            self._hurry = True
            for child in self._stopping_children:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
            return
        self.request_stop()

    @property
    def stop_requested(self) -> bool:
        return self._stopping.is_set()

    # ------------------------------------------------------------------ start
    async def start(self) -> Up:
        """Start every part. A stop requested meanwhile (`request_stop()`, a caught signal)
        cancels it: the parts started so far are stopped and CancelledError is raised."""
        self._start_task = asyncio.current_task()
        try:
            if self._stopping.is_set():
                raise asyncio.CancelledError
            await self._start()
        except BaseException:
            self._start_task = None
            await self.stop()
            raise
        self._start_task = None
        return self

    async def _start(self) -> None:
        from journeyman.engine.runtime.db import asyncpg_dsn, migrate

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = DataDirLock(self.data_dir).acquire()
        (self.data_dir / "logs").mkdir(exist_ok=True)
        # Ports first: a port asked for and taken is refused before anything starts.
        api_port = claim_port(self.api_port, "API", "--api-port or JOURNEYMAN_API_PORT")
        temporal_ports = (
            None
            if self.settings.temporal_address
            else (
                pick_port(self.temporal_port, 7233, "Temporal", "--temporal-port"),
                pick_port(self.ui_port, 8233, "Temporal web UI", "--ui-port"),
            )
        )

        t = time.perf_counter()
        if self.settings.database_url:
            self.database_url = asyncpg_dsn(self.settings.database_url)
            self._say("postgres", "external", redact(self.database_url))
        else:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            self._watch_postgres(self.postgres)
            self._postgres_starting = asyncio.ensure_future(asyncio.to_thread(self.postgres.start))
            # Shielded: cancelled meanwhile, `stop()` waits for the start and then stops it.
            self.database_url = await asyncio.shield(self._postgres_starting)
            self._say(
                "postgres",
                "ready",
                f"embedded, data in {self.postgres.data_dir} ({time.perf_counter() - t:.1f} s)",
            )

        t = time.perf_counter()
        if temporal_ports is None:
            self.temporal_address = self.settings.temporal_address or ""
            self._say("temporal", "external", self.temporal_address)
        else:
            self.temporal = TemporalDevServer(
                self.data_dir / "temporal",
                namespace=self.settings.temporal_namespace,
                port=temporal_ports[0],
                ui_port=temporal_ports[1],
                headless=False,
            )
            self.temporal.launch(preexec_fn=die_with_parent())
            await self._until_temporal(60)
            self.temporal_address = self.temporal.address
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
        await self._until(dispatcher, lambda: healthy(f"{dispatcher.url}/healthz"), 60)
        self._say(
            "dispatcher",
            "ready",
            f"health {dispatcher.url}/healthz ({time.perf_counter() - t:.1f} s)",
        )

        if self.with_scheduler:
            await self.start_scheduler()

        t = time.perf_counter()
        port = api_port
        api = self._spawn(
            "api",
            ["api", "--host", "127.0.0.1", "--port", str(port)],
            {"JOURNEYMAN_DASHBOARD_LOCAL_ONLY": "true" if self.local_dashboard else "false"},
        )
        self.api_url = api.url = f"http://127.0.0.1:{port}"
        await self._until(api, lambda: healthy(f"{self.api_url}/healthz"), 60)
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
        deadline = time.monotonic() + 60
        while (code := scheduler.process.poll()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if code is None:
            raise PartFailed(f"scheduler did not finish within 60 s; see {scheduler.log}")
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
            [sys.executable, "-c", _PART_MAIN, *args],
            env={**self.child_env(), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches `up`, which stops parts in order
            preexec_fn=die_with_parent(),  # ... and a killed `up` takes them with it
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

    async def _until_temporal(self, timeout: float) -> None:
        assert self.temporal is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await self.temporal.ready():
                    return
            except RuntimeError as err:
                raise PartFailed(str(err)) from None
            await asyncio.sleep(0.2)
        raise PartFailed(
            f"the Temporal dev server was not ready within {timeout:.0f} s; "
            f"see {self.temporal.data_dir / 'temporal.log'}"
        )

    def _watch_postgres(self, postgres: EmbeddedPostgres) -> None:
        """Start the watchdog that stops PostgreSQL if `up` dies
        (`journeyman.engine.runtime.lifeline`)."""
        lock_fd = self._lock.fileno if self._lock is not None else None
        command = watchdog_command(
            postgres.pg_ctl, str(postgres.pgdata), postgres.system_user, lock_fd or -1
        )
        with open(self.data_dir / "logs" / "watchdog.log", "ab") as log:
            self._watchdog = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=() if lock_fd is None else (lock_fd,),  # it holds the lock too
            )

    async def _make_build_current(self) -> str:
        from journeyman.engine.runtime.worker import deployment_name, set_current_build
        from temporalio.client import Client

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
        self.catch_signals()
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
        """Ask `wait()` to return, or a `start()` in progress to give up."""
        self._stopping.set()
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()

    async def stop(self) -> None:
        """Stop every part that runs; safe to call more than once and from several tasks."""
        if self._stop_task is None or self._stop_task.done():
            self._stop_task = asyncio.ensure_future(self._stop())
        # Shielded: a caller cancelled meanwhile must not leave parts half stopped.
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        children, self.children = list(reversed(self.children)), []
        self._stopping_children = children

        async def stop_child(child: Child) -> None:
            grace = 0.0 if self._hurry else self.stop_grace
            await asyncio.to_thread(stop_process, child.process, grace)
            self._say(child.name, "stopped", "")

        # Worker, dispatcher and API depend on Temporal and PostgreSQL, not on each other.
        await asyncio.gather(*(stop_child(c) for c in children))
        self._stopping_children = []
        await asyncio.gather(self._stop_temporal(), self._stop_postgres())
        if self._watchdog is not None:
            dismiss_watchdog(self._watchdog)
            self._watchdog = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def _stop_temporal(self) -> None:
        if self.temporal is None:
            return
        temporal, self.temporal = self.temporal, None
        await asyncio.to_thread(temporal.stop, 0.1 if self._hurry else self.stop_grace)
        self._say("temporal", "stopped", "")

    async def _stop_postgres(self) -> None:
        if self.postgres is None:
            return
        postgres, self.postgres = self.postgres, None
        if self._postgres_starting is not None:
            # A start cancelled half way still runs in its thread: let it end, then stop.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._postgres_starting), 30)
            self._postgres_starting = None
        await asyncio.to_thread(postgres.stop_now, 0.5 if self._hurry else self.stop_grace)
        self._say("postgres", "stopped", "")

    async def __aenter__(self) -> Up:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = ["Child", "PartFailed", "PortTaken", "Up", "task_queue_has_poller"]
