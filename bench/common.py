"""Shared bench plumbing: a throw-away embedded PostgreSQL, percentiles, the JSON last line."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bench_database(url: str | None = None) -> Iterator[str]:
    """A migrated database: `url` if given, else a fresh embedded PostgreSQL removed afterwards."""
    from journeyman.engine.runtime.db import migrate
    from journeyman.engine.runtime.stack import EmbeddedPostgres

    if url:
        import asyncio

        asyncio.run(migrate(url))
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="journeyman-bench-"))
    pg = EmbeddedPostgres(root / "pg")
    try:
        pg.start()
        import asyncio

        asyncio.run(migrate(pg.url))
        yield pg.url
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def result_line(bench: str, value: float, unit: str, limit: float, **extra: object) -> str:
    """The one-line JSON summary every bench ends with."""
    payload = {
        "bench": bench,
        "value": round(value, 2),
        "unit": unit,
        "limit": round(limit, 2),
        "ratio": round(value / limit, 3) if limit else None,
        **extra,
    }
    return json.dumps(payload)
