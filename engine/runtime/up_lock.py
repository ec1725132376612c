"""One `journeyman up` per data directory.

The lock is an OS file lock (`flock`) on `<data_dir>/up.lock`, so it goes away with the
processes that hold it however they end: a crashed or killed `up` never leaves a stale lock
behind. `up` shares it with its PostgreSQL watchdog (`journeyman.engine.runtime.lifeline`), so
after `up` is killed the directory stays locked until the watchdog has stopped PostgreSQL — a new
`up` cannot attach to a server about to be stopped. The file also holds the holder's pid and
command line, which the refusal names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path

LOCK_FILE = "up.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory."""


class DataDirLock:
    """An exclusive, non-blocking lock on a data directory; `acquire()` or refuse."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # os.open gives a non-inheritable descriptor: no part started later shares the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirBusy(
                f"the data directory {self.path.parent.resolve()} is in use by {holder}; "
                "stop that one first, or give this one another JOURNEYMAN_DATA_DIR"
            ) from None
        write_holder(fd, os.getpid(), _command_line())
        self._fd = fd
        return self

    @property
    def fileno(self) -> int | None:
        """The locked descriptor: a process given it (`pass_fds`) holds the lock too."""
        return self._fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the file before unlocking: a reader never names a process that has gone.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the only descriptor releases the lock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def write_holder(fd: int, pid: int, command: str) -> None:
    """Record who holds the lock (at offset 0: the descriptor may be shared)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n{command}\n".encode(), 0)


def _read_holder(fd: int) -> str:
    """'pid 123 (journeyman up --api-port 9000)' from the lock file, as far as it says."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 4096, 0).decode(errors="replace")
        pid, _, command = text.partition("\n")
        if pid.strip().isdigit():
            command = command.strip()
            return f"pid {pid.strip()} ({command})" if command else f"pid {pid.strip()}"
    return "another process"


def _command_line() -> str:
    argv = list(sys.argv) or ["?"]
    # The console script, or `python -c "from journeyman.engine.cli import main; main()"`.
    if argv[0] == "-c" or Path(argv[0]).stem == "journeyman":
        argv[0] = "journeyman"
    return " ".join(argv)
