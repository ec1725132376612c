"""`python -m bench scale` end to end at a tiny size: every measure runs, the scan finds and
starts exactly the members who are due, and the JSON last line carries the figures; the
cost-growth table is computed from the run's own figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench._shop import due_count
from bench.scale import COSTS, FLAT, print_table

from .runner import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.devserver]


def test_scale_bench_runs_end_to_end_at_a_tiny_size(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    figures = tmp_path / "scale.json"
    _, result = run_bench("scale", "--members", "300", "--json-out", str(figures))
    assert result["bench"] == "scale"
    assert result["unit"] == "s" and result["limit"] == 2.0
    assert result["members"] == 300 and result["sizes"] == [300]
    scan = result["scan"]
    # Exactly the members who went quiet are found and started, and Temporal counts them.
    assert scan["due"] == due_count(300) == 3
    assert scan["found"] == scan["started"] == scan["temporal_starts"] == 3
    assert 0 <= result["value"] < 60  # seconds, rounded: finding 3 members takes under 5 ms
    for window in ("first", "last"):
        assert 0 < result["load_ratio_to_copy"][window] < 10
    assert 0 < result["projection_ratio_to_bare_fold"] < 10
    assert 0 < result["api_p95_ms"]["dashboard"] < 30_000
    assert 0 < result["api_p95_ms"]["stats"] < 30_000
    assert 0 < result["dispatcher_ratio_to_bare"] < 10
    assert result["growth"] == {} and result["growth_flat"] is None

    (one,) = json.loads(figures.read_text())
    assert one["load"]["events"] == 300 * 20
    assert 0 < one["scan"]["find_s"] < 60 and one["scan"]["examined"] == 3
    assert one["projection"]["events"] == 300 * 20
    assert one["segments"]["members"] == 300
    assert one["api"]["entered"] == 300
    for when in ("memory_start_mb", "memory_end_mb"):
        assert one[when]["bench"] > 0 and one[when]["postgres"] > 0 and one[when]["temporal"] > 0

    # The growth table over two sizes with the same costs: every ratio 1, every cost flat.
    other = copy.deepcopy(one)
    other["members"] = 600
    capsys.readouterr()
    ratios = print_table([one, other])
    assert set(ratios) == {c.label for c in COSTS}
    assert all(v == pytest.approx(1.0) for v in ratios.values())
    table = capsys.readouterr().out
    assert "cost growth (600 over 300 members)" in table
    assert table.count("  flat") == sum(c.flat for c in COSTS) and FLAT == 1.5

    # A timed-out request makes its figure a bound: no growth ratio is claimed for it.
    other["api"]["timed_out"]["stats"] = 1
    ratios = print_table([one, other])
    assert ratios["/v1/journeys/…/stats p95"] is None
    assert ratios["dashboard journey page p95"] == pytest.approx(1.0)
