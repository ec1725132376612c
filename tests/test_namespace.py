"""Journeyman installs as one namespace, `journeyman.*`: no source file imports the folders
by their bare names (`engine`, `channels`, …), which would load a second copy of a module
from the working directory, and a package of that name installed beside Journeyman could
shadow them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = {"engine", "workflows", "channels", "plugins", "event_store", "migrations"}
SKIP = {".venv", ".git", "node_modules", ".journeyman", "build", "dist"}


def _sources() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP.intersection(p.relative_to(ROOT).parts)]


def _bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in BARE
        ]
    return found


def test_no_source_imports_a_folder_by_its_bare_name() -> None:
    sources = _sources()
    assert len(sources) > 200
    bare = [hit for p in sources for hit in _bare_imports(p)]
    assert bare == []


def test_the_packages_import_under_journeyman() -> None:
    import journeyman.channels
    import journeyman.engine.cli
    import journeyman.event_store
    import journeyman.migrations
    import journeyman.plugins
    import journeyman.workflows

    for module in (journeyman.channels, journeyman.event_store, journeyman.workflows):
        assert Path(module.__file__).parent.parent == ROOT
