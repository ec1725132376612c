"""The profile projection never halts on one event: an undecodable row or an event whose
folding keeps failing is parked as a dead letter and the other members' profiles carry on;
`journeyman deadletters list|retry|drop` handle what was parked."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from deadletter_testkit import BC_TIMESTAMP, huge_integer_sql, insert_raw
from journeyman.engine.core.metrics import DEAD_LETTERS_PARKED
from journeyman.engine.core.settings import Settings
from journeyman.engine.deadletters import actions as deadletters
from journeyman.engine.profiles import NAME, ProfileProjector, get_profile
from journeyman.event_store import NewEvent
from journeyman.event_store.deadletters import list_dead_letters
from pydantic import SecretStr

JOURNEYMAN = shutil.which("journeyman") or str(Path(sys.executable).parent / "journeyman")


def _settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(secret_key=SecretStr("s" * 40), data_dir=tmp_path)


async def _cli(database_url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        JOURNEYMAN,
        "deadletters",
        *args,
        env={
            **os.environ,
            "JOURNEYMAN_DATABASE_URL": database_url,
            "COLUMNS": "300",
            **(env or {}),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


def _parked(consumer: str, reason: str) -> float:
    return DEAD_LETTERS_PARKED.labels(consumer, reason)._value.get()


async def test_undecodable_rows_are_parked_and_others_carry_on(
    store, database_url, tmp_path
) -> None:
    settings = _settings(tmp_path)
    before = _parked(NAME, "undecodable")
    await store.append("member-m1", [NewEvent("page.viewed", {"url": "/"})])
    bc = await insert_raw(store, "bc", occurred_at=BC_TIMESTAMP)
    # An order: the projection reads its data (a view's it never decodes, nor needs to).
    big = await insert_raw(store, "big", "order.placed", data_sql=huge_integer_sql())
    await store.append("member-m2", [NewEvent("order.placed", {"total": 12.5})])

    projector = ProfileProjector(store, settings, segments=())
    await asyncio.wait_for(projector.run_until_caught_up(), 30)
    assert (await get_profile(store.pool, "m1", settings=settings)) is not None
    m2 = await get_profile(store.pool, "m2", settings=settings)
    assert m2 is not None and m2.monetary_value == 12.5
    assert await get_profile(store.pool, "big", settings=settings) is None

    parked = await list_dead_letters(store.pool)
    assert [(d.consumer, d.global_position) for d in parked] == [(NAME, bc), (NAME, big)]
    assert "date value out of range" in parked[0].error
    assert _parked(NAME, "undecodable") - before == 2

    # New events after them still flow.
    await store.append("member-m3", [NewEvent("page.viewed", {})])
    await projector.run_until_caught_up()
    assert await get_profile(store.pool, "m3", settings=settings) is not None

    code, out = await _cli(database_url, "list")
    assert code == 0, out
    assert f"{parked[0].id} parked member_profiles position {bc}" in out
    assert "date value out of range" in out and "member-big" in out

    # Retried with nothing fixed: fails again, stays parked, exit 1.
    code, out = await _cli(database_url, "retry", str(parked[1].id))
    assert code == 1 and "still parked" in out, out
    # The operator's fix for integers past Python's digit limit: raise the limit.
    code, out = await _cli(
        database_url, "retry", str(parked[1].id), env={"PYTHONINTMAXSTRDIGITS": "0"}
    )
    assert code == 0, out
    assert (await get_profile(store.pool, "big", settings=settings)) is not None
    code, out = await _cli(
        database_url, "retry", str(parked[1].id), env={"PYTHONINTMAXSTRDIGITS": "0"}
    )
    assert code == 1 and "not retried twice" in out, out

    code, out = await _cli(database_url, "drop", str(parked[0].id), "--reason", "bad clock")
    assert code == 0, out
    assert await list_dead_letters(store.pool) == []
    statuses = {
        d.id: (d.status, d.attempts) for d in await list_dead_letters(store.pool, status=None)
    }
    assert statuses == {parked[0].id: ("dropped", 1), parked[1].id: ("retried", 2)}
    code, out = await _cli(database_url, "show", str(parked[0].id))
    assert code == 0 and '"undecodable"' in out and "BC" in out, out

    # A rebuild replays the store: the dropped event stays dropped; this process still
    # cannot read the other one, so it is parked again.
    await ProfileProjector(store, settings, segments=()).rebuild()
    statuses = {
        d.id: (d.status, d.attempts) for d in await list_dead_letters(store.pool, status=None)
    }
    assert statuses == {parked[0].id: ("dropped", 2), parked[1].id: ("parked", 3)}
    assert await get_profile(store.pool, "m3", settings=settings) is not None


async def test_an_event_whose_folding_keeps_failing_is_parked(store, tmp_path) -> None:
    """Two orders of 1e308 make the monetary value infinite, which the profile row cannot
    store: that member's second order fails every attempt; everyone else goes on."""
    settings = _settings(tmp_path)
    settings.dead_letter_attempts = 2
    await store.append("member-a", [NewEvent("page.viewed", {})])
    await store.append("member-rich", [NewEvent("order.placed", {"total": 1e308})])
    poison = await store.append("member-rich", [NewEvent("order.placed", {"total": 1e308})])
    await store.append("member-b", [NewEvent("order.placed", {"total": 5})])

    projector = ProfileProjector(store, settings, segments=())
    await asyncio.wait_for(projector.run_until_caught_up(), 30)
    assert (await get_profile(store.pool, "a", settings=settings)) is not None
    b = await get_profile(store.pool, "b", settings=settings)
    assert b is not None and b.order_count == 1
    parked = await list_dead_letters(store.pool)
    assert [(d.global_position, d.attempts) for d in parked] == [(poison[0].global_position, 2)]
    rich = await get_profile(store.pool, "rich", settings=settings)
    assert rich is not None and rich.order_count == 1

    outcome = await deadletters.retry(store, settings, parked[0].id)
    assert not outcome.ok and (await list_dead_letters(store.pool))[0].attempts == 3
    # Back to batches after the narrowed stretch.
    await store.append("member-c", [NewEvent("page.viewed", {})])
    await store.append("member-d", [NewEvent("page.viewed", {})])
    assert await projector.run_once() == 2
