"""`journeyman up` as an operator runs it: a real process with every part, on free ports and
a data directory of its own.

One `up` per data directory; SIGTERM, SIGINT (during startup too, and to an `up` started in
the background, whose SIGINT the shell set to ignored) stop every part within 5 s; a killed
`up` takes its parts with it; a taken API port is refused. "No part left" means: no process
`up` started is alive, no port it served answers, PostgreSQL's `postmaster.pid` is gone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from journeyman.engine.runtime.lifeline import postgres_running, stop_postgres
from journeyman.engine.runtime.stack import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.slow, pytest.mark.devserver]

START_TIMEOUT = 150.0  # a full start takes ~15 s here, far more on a crowded machine
READY = "Ctrl-C to stop"


class UpProcess:
    """`journeyman up` in its own session, output to a file, its parts recorded."""

    def __init__(self, data_dir: Path, *, background: bool = False, api_port: int = 0) -> None:
        self.data_dir = data_dir
        self.api_port = api_port or free_port()
        self.temporal_port, self.ui_port = free_port(), free_port()
        self.out = data_dir.parent / f"up-{time.monotonic_ns()}.out"
        env = {
            **os.environ,
            "JOURNEYMAN_DATA_DIR": str(data_dir),
            "JOURNEYMAN_SECRET_KEY": "lifetime-secret-" + "s" * 40,
            "COLUMNS": "200",
        }
        for key in ("JOURNEYMAN_DATABASE_URL", "JOURNEYMAN_TEMPORAL_ADDRESS"):
            env.pop(key, None)
        with open(self.out, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from journeyman.engine.cli import main; main()",
                    "up",
                    "--api-port",
                    str(self.api_port),
                    "--temporal-port",
                    str(self.temporal_port),
                    "--ui-port",
                    str(self.ui_port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # `up &` in a script: the shell starts it with SIGINT and SIGQUIT ignored.
                preexec_fn=_ignore_sigint if background else None,
            )
        self.pid = self.process.pid
        self.parts: set[int] = set()

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                self.record_parts()
                return
            if self.process.poll() is not None:
                pytest.fail(f"up exited with {self.process.returncode}:\n{self.output}")
            time.sleep(0.1)
        pytest.fail(f"no {text!r} within {timeout:.0f} s:\n{self.output}")

    def record_parts(self) -> None:
        """Every process `up` started so far, PostgreSQL included (it detaches)."""
        try:
            self.parts |= {p.pid for p in psutil.Process(self.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
        postmaster = _postmaster_pid(self.data_dir)
        if postmaster is not None:
            self.parts.add(postmaster)

    def signal(self, sig: int) -> float:
        self.record_parts()
        os.kill(self.pid, sig)
        return time.monotonic()

    def exit_code(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"up still running {timeout:.0f} s after the signal:\n{self.output}")

    def ports(self) -> list[int]:
        return [self.api_port, self.temporal_port, self.ui_port]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _locked(data_dir: Path) -> bool:
    with open(data_dir / "up.lock", "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def left_behind(up: UpProcess) -> list[str]:
    left = [f"pid {p} ({' '.join(psutil.Process(p).cmdline())})" for p in up.parts if _alive(p)]
    left += [f"port {port}" for port in up.ports() if _answers(port)]
    if (up.data_dir / "postgres" / "postmaster.pid").exists():
        left.append("postgres/postmaster.pid")
    return left


def assert_nothing_left(up: UpProcess, within: float) -> None:
    deadline = time.monotonic() + within
    while left_behind(up) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left_behind(up) == [], up.output


@pytest.fixture(scope="module")
def data_root() -> Iterator[Path]:
    # Not under pytest's private basetemp: embedded PostgreSQL runs as its own OS user.
    root = Path(tempfile.mkdtemp(prefix="journeyman-up-life-"))
    try:
        yield root
    finally:
        pgdata = root / "data" / "postgres"
        if postgres_running(str(pgdata)):
            pg = EmbeddedPostgres(pgdata)
            stop_postgres(pg.pg_ctl, str(pg.pgdata), pg.system_user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ups(data_root: Path) -> Iterator[list[UpProcess]]:
    """The `up` processes a test starts; whatever a failed test leaves running is killed."""
    started: list[UpProcess] = []
    yield started
    for up in started:
        up.record_parts()
        for pid in [up.pid, *up.parts]:
            if _alive(pid) and pid != _postmaster_pid(up.data_dir):
                os.kill(pid, signal.SIGKILL)
        up.process.wait(10)
    pgdata = data_root / "data" / "postgres"
    if postgres_running(str(pgdata)):
        pg = EmbeddedPostgres(pgdata)
        stop_postgres(pg.pg_ctl, str(pg.pgdata), pg.system_user)


def start(ups: list[UpProcess], data_dir: Path, **kw: object) -> UpProcess:
    up = UpProcess(data_dir, **kw)  # type: ignore[arg-type]
    ups.append(up)
    return up


def test_a_taken_api_port_is_refused(ups: list[UpProcess], data_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = start(ups, data_root / "fresh", api_port=port)
        assert up.exit_code(60) == 1
    said = " ".join(up.output.split())
    assert f"the API port {port} is already in use by pid {os.getpid()}" in said
    assert "--api-port or JOURNEYMAN_API_PORT" in said
    assert not (data_root / "fresh" / "postgres").exists()  # refused before anything started


def test_a_second_up_is_refused_and_sigint_while_starting_stops_the_first(
    ups: list[UpProcess], data_root: Path
) -> None:
    data = data_root / "data"
    first = start(ups, data)
    first.wait_for("postgres    ready")

    second = start(ups, data)
    assert second.exit_code(60) == 1
    said = " ".join(second.output.split())
    assert f"is in use by pid {first.pid} (journeyman up --api-port {first.api_port}" in said
    assert "ready" not in said  # it started nothing

    sent = first.signal(signal.SIGINT)
    assert first.exit_code(20) == 0
    assert READY not in first.output
    assert time.monotonic() - sent < 10  # a start cancelled while PostgreSQL or Temporal starts
    assert_nothing_left(first, within=1)


def test_sigterm_stops_every_part_within_5_s(ups: list[UpProcess], data_root: Path) -> None:
    up = start(ups, data_root / "data")
    up.wait_for(READY)
    assert {"postgres", "temporal", "worker", "dispatcher", "api"} <= _names(up)
    sent = up.signal(signal.SIGTERM)
    assert up.exit_code(15) == 0
    assert time.monotonic() - sent < 5, up.output
    assert_nothing_left(up, within=0.5)


def test_sigint_stops_an_up_started_in_the_background(
    ups: list[UpProcess], data_root: Path
) -> None:
    up = start(ups, data_root / "data", background=True)
    up.wait_for(READY)
    sent = up.signal(signal.SIGINT)
    assert up.exit_code(15) == 0
    assert time.monotonic() - sent < 5, up.output
    assert_nothing_left(up, within=0.5)


def test_parts_stop_on_their_own_when_up_is_killed(ups: list[UpProcess], data_root: Path) -> None:
    up = start(ups, data_root / "data")
    up.wait_for(READY)
    up.signal(signal.SIGKILL)
    up.process.wait(5)
    # Until its PostgreSQL has stopped, the directory stays locked: a new `up` would
    # otherwise attach to a server about to be stopped.
    deadline = time.monotonic() + 10
    while _postmaster_pid(up.data_dir) is not None and time.monotonic() < deadline:
        holds = _locked(up.data_dir)
        if _postmaster_pid(up.data_dir) is not None:
            assert holds, "PostgreSQL still runs but the data directory is unlocked"
        time.sleep(0.05)
    assert_nothing_left(up, within=10)

    # The lock died with its holder: the next `up` starts over the same data directory.
    again = start(ups, data_root / "data")
    again.wait_for("postgres    ready")
    again.signal(signal.SIGTERM)
    assert again.exit_code(20) == 0
    assert_nothing_left(again, within=1)


def _names(up: UpProcess) -> set[str]:
    names = set()
    for pid in up.parts:
        with_args = " ".join(psutil.Process(pid).cmdline())
        for part in ("worker", "dispatcher", "api", "temporal", "postgres"):
            if part in with_args:
                names.add(part)
    return names
