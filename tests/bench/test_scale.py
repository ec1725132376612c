"""`python -m bench scale` end to end at a tiny size: every measure runs and the JSON last
line carries the scan figures and the growth ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench._shop import due_count
from bench.scale import COSTS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.devserver]


def test_scale_bench_runs_end_to_end_at_two_tiny_sizes() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "scale", "--sizes", "300,600"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "scale"
    assert result["unit"] == "s" and result["limit"] == 2.0
    assert result["members"] == 600 and result["sizes"] == [300, 600]
    scan = result["scan"]
    # Exactly the members who went quiet are found and started, and Temporal agrees.
    assert scan["due"] == due_count(600) == 6
    assert scan["found"] == scan["started"] == scan["temporal_starts"] == 6
    assert 0 < result["value"] < 60
    for window in ("first", "last"):
        assert 0 < result["load_ratio_to_copy"][window] < 10
    assert 0 < result["projection_ratio_to_bare_fold"] < 10
    assert result["api_p95_ms"]["dashboard"] > 0 and result["api_p95_ms"]["stats"] > 0
    assert 0 < result["dispatcher_ratio_to_bare"] < 10
    assert set(result["growth"]) == {c.label for c in COSTS}
    assert all(v > 0 for v in result["growth"].values())
    assert isinstance(result["growth_flat"], bool)
    assert any(line.startswith("cost growth (600 over 300 members)") for line in lines)
