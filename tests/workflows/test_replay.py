"""Recorded histories of every built-in journey replay against the current code; a change
made without `patched` fails replay, the same change behind `patched` passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from changed_cart import CartRecoveryPatched, CartRecoveryUnpatched
from journey_testkit import JOURNEYS, event, member_with, start
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.contracts import JourneyResult
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
NAMES = ["cart_recovery", "winback", "welcome", "post_purchase_survey"]


def history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"journey/{name}", (HISTORIES / f"{name}.json").read_text())


@pytest.mark.parametrize("name", NAMES)
async def test_recorded_history_replays_against_current_code(name: str) -> None:
    replayer = Replayer(workflows=JOURNEYS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history(name))
    assert result.replay_failure is None


async def test_unpatched_change_fails_replay() -> None:
    replayer = Replayer(workflows=[CartRecoveryUnpatched], data_converter=pydantic_data_converter)
    with pytest.raises(Exception, match=r"(?i)nondetermin"):
        await replayer.replay_workflow(history("cart_recovery"))


async def test_patched_change_replays_and_new_runs_take_the_new_path(temporal_env, store) -> None:
    replayer = Replayer(workflows=[CartRecoveryPatched], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history("cart_recovery"))
    assert result.replay_failure is None
    # A member entering after the deploy gets the teaser.
    member = member_with(CartRecoveryPatched, holdout=False)
    acts = JourneyActivities(store)
    async with Worker(
        temporal_env.client,
        task_queue="patched",
        workflows=[CartRecoveryPatched],
        activities=acts.all(),
    ):
        handle = await start(
            temporal_env.client,
            "patched",
            CartRecoveryPatched,
            member,
            trigger=event("cart.updated", {"cart_id": "p", "items": [1]}),
        )
        out: JourneyResult = await handle.result()
    assert [s.template for s in out.sends] == ["cart_teaser", "cart_reminder", "cart_coupon"]
