"""Helpers that install small throwaway plugins as real distributions (a `.dist-info` with
`entry_points.txt` on sys.path), so they are found exactly as installed packages are."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def install(distribution: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
            created.append(name)
        info = tmp_path / f"{distribution.replace('-', '_')}-0.3.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.3.1\n"
        )
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[journeyman]\n{lines}\n")
        importlib.invalidate_caches()

    yield install
    for name in created:
        sys.modules.pop(name, None)
