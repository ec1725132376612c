"""Parts of `journeyman up` stop when `up` itself dies, however it dies (even SIGKILL).

* Every part `up` starts directly (Temporal, worker, dispatcher, API) gets a parent-death
  signal (Linux `prctl(PR_SET_PDEATHSIG, SIGTERM)`, set between fork and exec).
* PostgreSQL detaches from its starter (`pg_ctl` daemonises it), so no signal reaches it.
  A small watchdog process, started before PostgreSQL, polls its parent `up` twice a second
  and stops PostgreSQL (`pg_ctl stop -m fast`, then `-m immediate`) once `up` is gone.

    python -c "from journeyman.engine.runtime.lifeline import main; main()" \
        <up pid> <lock fd> <pg_ctl> <pgdata> [user]

The watchdog shares `up`'s data-directory lock (`journeyman.engine.runtime.up_lock`), so the
directory stays locked until PostgreSQL has stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when this process dies, or None
    where the platform has no parent-death signal.

    Spawn from the main thread: the kernel sends the signal when the *thread* that forked
    the child exits."""
    if _libc is None:
        return None
    libc, parent = _libc, os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def watchdog_command(pg_ctl: str, pgdata: str, user: str | None, lock_fd: int = -1) -> list[str]:
    """The command line of a watchdog over this process and the PostgreSQL in `pgdata`;
    pass `lock_fd` to it (`pass_fds`) for it to hold the data-directory lock as well."""
    args = [str(os.getpid()), str(lock_fd), pg_ctl, pgdata, *([user] if user else [])]
    return [
        sys.executable,
        "-c",
        "from journeyman.engine.runtime.lifeline import main; main()",
        *args,
    ]


def stop_postgres(pg_ctl: str, pgdata: str, user: str | None, timeout: float = 4.0) -> bool:
    """`pg_ctl stop -m fast` (sessions end, transactions roll back, a shutdown checkpoint),
    and `-m immediate` if that takes longer than `timeout` (recovery on the next start)."""
    for mode, wait in (("fast", timeout), ("immediate", 5.0)):
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            done = subprocess.run(
                [pg_ctl, "-D", pgdata, "-m", mode, "-w", "-t", str(max(1, int(wait))), "stop"],
                user=user,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=wait + 1,
                check=False,
            )
            if done.returncode == 0 or not postgres_running(pgdata):
                return True
    return not postgres_running(pgdata)


def postgres_running(pgdata: str) -> bool:
    """Is the postmaster named in `<pgdata>/postmaster.pid` alive?"""
    try:
        with open(os.path.join(pgdata, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> None:
    """The watchdog: poll the parent; when it has gone, stop PostgreSQL and exit.

    It polls rather than taking a parent-death signal, which could arrive before the
    interpreter has a handler for it. SIGTERM from a living `up` means "not needed"."""
    parent, lock_fd, pg_ctl, pgdata, *rest = argv if argv is not None else sys.argv[1:]
    user = rest[0] if rest else None
    dismissed = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal dismissed
        dismissed = True

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is `up`'s to handle
    signal.signal(signal.SIGTERM, on_term)
    while os.getppid() == int(parent):
        if dismissed:
            return  # `up` lives and stops PostgreSQL itself
        time.sleep(0.5)
    if int(lock_fd) >= 0:
        from journeyman.engine.runtime.up_lock import write_holder

        with contextlib.suppress(OSError):
            write_holder(
                int(lock_fd),
                os.getpid(),
                f"the watchdog of journeyman up pid {parent}, stopping its PostgreSQL",
            )
    stop_postgres(pg_ctl, pgdata, user)
    # Exiting closes the lock's descriptor: the data directory is free again.
