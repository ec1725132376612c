"""What the import contracts (`lint-imports`, run by `make test`) cannot see: a package's
`__init__` runs when any module below it is imported. The Python client, imported alone,
loads nothing of the server."""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_by(module: str) -> set[str]:
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('journeyman'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_the_python_client_loads_nothing_of_the_server() -> None:
    assert _loaded_by("journeyman.engine.client") == {
        "journeyman",
        "journeyman.engine",
        "journeyman.engine.client",
        "journeyman.engine.ingest",
        "journeyman.engine.ingest.answers",
    }


def test_the_event_store_loads_nothing_else_of_journeyman() -> None:
    loaded = _loaded_by("journeyman.event_store")
    assert {m.split(".")[1] for m in loaded if m != "journeyman"} == {"event_store"}
