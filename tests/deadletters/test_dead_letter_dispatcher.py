"""The dispatcher never halts on one event: a row it cannot decode and an event Temporal
keeps refusing are parked; other members' journeys start."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from deadletter_testkit import BC_TIMESTAMP, huge_integer_sql, insert_raw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dispatcher"))

from dispatch_testkit import FAST, append, eventually, journeys, running, worker_for
from journeyman.engine.core.settings import Settings
from journeyman.engine.deadletters import actions as deadletters
from journeyman.engine.routing.dispatcher import SUBSCRIPTION, Dispatcher
from journeyman.event_store.deadletters import list_dead_letters
from pydantic import SecretStr

pytestmark = pytest.mark.devserver


async def test_dispatcher_parks_what_it_cannot_route_and_goes_on(
    temporal_dev, store, tmp_path
) -> None:
    client = temporal_dev.client
    found = journeys("cart_recovery")
    settings = {**FAST, "cart_recovery": {**FAST["cart_recovery"], "quiet_period": 30}}
    async with worker_for(client, store, found, settings) as tq:
        d = Dispatcher(
            store, client, found, task_queue=tq, journey_settings=settings, dead_letter_attempts=2
        )
        # A workflow id past Temporal's length limit: refused on every attempt.
        poison = await append(store, "m1", "cart.updated", {"cart_id": "c" * 5000, "items": [1]})
        bc = await insert_raw(store, "bc", "cart.updated", occurred_at=BC_TIMESTAMP)
        big = await insert_raw(
            store,
            "big",
            "cart.updated",
            occurred_at=dt.datetime.now(dt.UTC).isoformat(),
            data_sql="""'{"cart_id": "cb", "items": ["a"]}'::jsonb""",
            metadata_sql=huge_integer_sql(),
        )
        async with running(d):
            await append(store, "m2", "cart.updated", {"cart_id": "c2", "items": ["a"]})
            await eventually(
                lambda: _entered(store, "m2"), what="m2's cart journey entered", timeout=30
            )
        parked = await list_dead_letters(store.pool, consumer=SUBSCRIPTION)
        assert [d.global_position for d in parked] == [poison, bc, big]
        # After the fix for integers past the digit limit, a retry starts big's journey.
        s = Settings(secret_key=SecretStr("s" * 40), data_dir=tmp_path, task_queue=tq)
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            outcome = await deadletters.retry(
                store, s, parked[2].id, temporal=client, journeys=found
            )
            assert outcome.ok, outcome.message
            await eventually(lambda: _entered(store, "big"), what="big's journey", timeout=30)
        finally:
            sys.set_int_max_str_digits(limit)
    assert parked[0].attempts == 2 and parked[0].error.startswith("RPCError")
    assert "date value out of range" in parked[1].error
    assert d.stats["dead_letters"] == 3

    # A retry goes through the dispatcher again (and, unfixed, fails again).
    outcome = await deadletters.retry(store, s, parked[0].id, temporal=client, journeys=found)
    assert not outcome.ok and (await list_dead_letters(store.pool))[0].attempts == 3


async def _entered(store, member: str) -> bool:
    return any(e.type == "journey.entered" for e in await store.read_stream(f"member-{member}"))
