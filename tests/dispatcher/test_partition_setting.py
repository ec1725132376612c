"""A dispatcher partition outside `0..count-1` is refused, naming the setting: it would
route every member under a checkpoint of its own and replay the whole store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from journeyman.engine.routing.dispatcher import Dispatcher

JOURNEYMAN = shutil.which("journeyman") or str(Path(sys.executable).parent / "journeyman")
# Nothing listens there: a command that got past the check fails to connect instead.
NOWHERE = "postgresql://journeyman@127.0.0.1:9/none"


def _dispatcher(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOURNEYMAN, "dispatcher", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")},
            "JOURNEYMAN_DATABASE_URL": NOWHERE,
            "JOURNEYMAN_TEMPORAL_ADDRESS": "127.0.0.1:9",
            "COLUMNS": "200",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--partition", "1"], {}),
        (["--partition", "2", "--partitions", "2"], {}),
        (["--partition", "0", "--partition", "3"], {"JOURNEYMAN_DISPATCHER_PARTITIONS": "3"}),
        (["--partition", "-1"], {}),
    ],
)
def test_partition_outside_the_count_is_refused(args: list[str], env: dict[str, str]) -> None:
    result = _dispatcher(*args, **env)
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, out
    assert "JOURNEYMAN_DISPATCHER_PARTITIONS" in out and "outside" in out, out


def test_partition_inside_the_count_gets_past_the_check() -> None:
    result = _dispatcher("--partition", "1", JOURNEYMAN_DISPATCHER_PARTITIONS="2")
    out = result.stdout + result.stderr
    assert result.returncode not in (0, 2) and "outside" not in out, out


def test_dispatcher_refuses_it_too() -> None:
    with pytest.raises(ValueError, match="JOURNEYMAN_DISPATCHER_PARTITIONS"):
        Dispatcher(None, None, {}, partition=1, partitions=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Dispatcher(None, None, {}, partition=0, partitions=0)  # type: ignore[arg-type]
