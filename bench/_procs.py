"""Memory of the processes a bench runs, read from /proc (Linux).

PostgreSQL is a postmaster and its backends, which share `shared_buffers`: their RSS would
count that memory once per process, so the server's figure is the sum of their PSS
(proportional set size), which counts shared pages once in total.
"""

from __future__ import annotations

import os
from pathlib import Path


def _field_kb(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    kb = _field_kb(Path(f"/proc/{pid}/status"), "VmRSS")
    return None if kb is None else kb / 1024


def pss_mb(pid: int) -> float | None:
    kb = _field_kb(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
    return rss_mb(pid) if kb is None else kb / 1024


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows its end.
        out[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postgres_mb(pgdata: Path | None) -> float | None:
    """The PostgreSQL server's memory (PSS summed over the postmaster and its backends)."""
    if pgdata is None:
        return None
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    pids = [postmaster, *descendants(postmaster)]
    values = [v for v in (pss_mb(p) for p in pids) if v is not None]
    return sum(values) if values else None


def temporal_mb() -> float | None:
    """RSS of the Temporal dev server this process started."""
    for pid in descendants(os.getpid()):
        if "temporal" in _cmdline(pid).split(" ")[0] and "server" in _cmdline(pid):
            return rss_mb(pid)
    return None


def snapshot(pgdata: Path | None) -> dict[str, float | None]:
    """MB of each process: this one (store, projector, API, dispatcher run in it),
    PostgreSQL, the Temporal dev server."""
    return {
        "bench": rss_mb(os.getpid()),
        "postgres": postgres_mb(pgdata),
        "temporal": temporal_mb(),
    }
