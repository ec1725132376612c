"""No fault: the rig itself reconciles (the reference every fault scenario is held to)."""

from __future__ import annotations

import time

import pytest

from .rig import Figures, Load, Rig, assert_reconciled, reconcile, wait_for_journeys

pytestmark = [pytest.mark.devserver, pytest.mark.slow]


async def test_no_fault(database_url, tmp_path, long_faults, fault_figures) -> None:
    started = time.monotonic()
    members = 200 if long_faults else 30
    async with Rig(tmp_path / "rig", database_url) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="base")
        await load.run()
        await wait_for_journeys(rig, load, timeout=180)
        figures = await reconcile(rig, load, Figures("no fault", "none", members))
    figures.seconds = time.monotonic() - started
    print("\n" + figures.line())
    fault_figures.add(figures.as_dict())
    assert_reconciled(figures)
