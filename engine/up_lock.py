"""One `journeyman up` per data directory.

The lock is an OS file lock (`flock`) on `<data_dir>/up.lock`, so it goes away with the
process that holds it however that process ends: a crashed or killed `up` never leaves a
stale lock behind. The file also holds the holder's pid and command line, which the refusal
names.
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
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command_line()}\n".encode())
        self._fd = fd
        return self

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


def _read_holder(fd: int) -> str:
    """'pid 123 (journeyman up --api-port 9000)' from the lock file, as far as it says."""
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode(errors="replace")
        pid, _, command = text.partition("\n")
        if pid.strip().isdigit():
            command = command.strip()
            return f"pid {pid.strip()} ({command})" if command else f"pid {pid.strip()}"
    return "another process"


def _command_line() -> str:
    argv = list(sys.argv) or ["?"]
    # The console script, or `python -c "from engine.cli import main; main()"`.
    if argv[0] == "-c" or Path(argv[0]).stem == "journeyman":
        argv[0] = "journeyman"
    return " ".join(argv)
