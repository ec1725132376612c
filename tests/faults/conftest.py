"""Fault suite fixtures: `--long-faults` for the scaled-up variants, and the figures table
every scenario adds to (written to `test-artifacts/faults.json` at the end of the session)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long-faults",
        action="store_true",
        default=False,
        help="Run the fault scenarios at their long size (more members, longer faults).",
    )


@pytest.fixture(scope="session")
def long_faults(request: pytest.FixtureRequest) -> bool:
    # The option exists only when this conftest is loaded at start-up (pytest tests/faults).
    return bool(request.config.getoption("--long-faults", default=False))


class FiguresTable:
    def __init__(self, path: Path, long: bool) -> None:
        self.path = path
        self.long = long
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        payload = {
            "suite": "tests/faults",
            "variant": "long" if self.long else "default",
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "scenarios": self.rows,
        }
        self.path.write_text(json.dumps(payload, indent=2) + "\n")


@pytest.fixture(scope="session")
def fault_figures(artifacts_dir: Path, long_faults: bool) -> Iterator[FiguresTable]:
    table = FiguresTable(artifacts_dir / "faults.json", long_faults)
    yield table
    if table.rows:
        table.write()
