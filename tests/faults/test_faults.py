"""Faults on the running system, each ending in a reconciliation.

Every scenario runs the API, the worker and the dispatcher as processes (see `rig.py`),
drives members' events through the HTTP client, applies one fault, waits for every cart
journey to finish, and then checks the promises: every acknowledged event stored exactly
once, every due message at the peers exactly once (or recorded in doubt and never re-sent),
no journey stuck or started twice. The figures go to `test-artifacts/faults.json` and are
recorded in docs/reliability.md.

    .venv/bin/python -m pytest tests/faults -s                  # default sizes
    .venv/bin/python -m pytest tests/faults -s --long-faults    # scaled up
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from journeyman.engine.runtime.stack import EmbeddedPostgres

from .rig import (
    Figures,
    Load,
    Rig,
    Timings,
    assert_reconciled,
    eventually,
    reconcile,
    wait_for_journeys,
)

pytestmark = [pytest.mark.devserver, pytest.mark.slow]

# A deliver activity that was running in a killed worker is retried after its
# start-to-close timeout (60 s): waits must allow for that, and for a shared, busy machine.
JOURNEYS_TIMEOUT = 300.0


def size(long: bool, default: int, scaled: int) -> int:
    return scaled if long else default


async def finish(
    rig: Rig,
    load: Load,
    figures: Figures,
    table,  # type: ignore[no-untyped-def]
    started: float,
    *,
    in_doubt_allowed: int = 0,
) -> Figures:
    await wait_for_journeys(rig, load, timeout=JOURNEYS_TIMEOUT)
    await reconcile(rig, load, figures)
    figures.seconds = time.monotonic() - started
    print("\n" + figures.line())
    table.add(figures.as_dict())
    assert_reconciled(figures, in_doubt_allowed=in_doubt_allowed)
    return figures


def when_acknowledged(load: Load, share: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(load.acknowledged) >= share * len(load.events)

    return check


def when_delivered(rig: Rig, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rig.assert_alive()
        return sum(rig.peer_deliveries().values()) >= count

    return check


# ------------------------------------------------------------------------------- API
async def test_api_killed_mid_ingestion(database_url, tmp_path, long_faults, fault_figures):
    """The API is SIGKILLed twice while batches are in flight; the client retries with the
    same event ids. Acknowledged events are all stored, none twice."""
    started = time.monotonic()
    members = size(long_faults, 40, 400)
    async with Rig(tmp_path / "rig", database_url) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="api", batch=10)
        sending = asyncio.create_task(load.run(pause=0.02))
        for share in (0.25, 0.6):
            await eventually(when_acknowledged(load, share), timeout=120, what=f"{share:.0%}")
            assert not sending.done(), "the fault must land during ingestion"
            rig.kill("api")
            await asyncio.sleep(1.0)
            rig.start("api")
        await asyncio.wait_for(sending, 300)
        figures = Figures("API SIGKILLed mid-ingestion", "SIGKILL api x2", members)
        await finish(rig, load, figures, fault_figures, started)
    assert rig.procs["api"].kills == 2


# ------------------------------------------------------------------------------- dispatcher
async def test_dispatcher_killed_mid_load(database_url, tmp_path, long_faults, fault_figures):
    """The dispatcher is SIGKILLed while routing; once it is back within a second, once it
    stays down long enough for journeys it had started to finish. It resumes from its
    checkpoint: re-routed events must neither be lost nor start a cart's journey twice."""
    started = time.monotonic()
    members = size(long_faults, 40, 400)
    timings = Timings()
    async with Rig(tmp_path / "rig", database_url, timings=timings) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="dsp", batch=10)
        sending = asyncio.create_task(load.run(pause=0.05))
        await eventually(when_acknowledged(load, 0.3), timeout=120, what="30% acknowledged")
        rig.kill("dispatcher")
        await asyncio.sleep(1.0)
        rig.start("dispatcher")
        await eventually(when_acknowledged(load, 0.7), timeout=120, what="70% acknowledged")
        rig.kill("dispatcher")
        # Down for longer than a whole journey: runs it started before dying finish first.
        down = timings.quiet_period + timings.coupon_delay + timings.attribution_window + 8
        await asyncio.sleep(down)
        rig.start("dispatcher")
        await asyncio.wait_for(sending, 300)
        figures = Figures(
            "dispatcher SIGKILLed mid-load",
            f"SIGKILL dispatcher x2 (down 1 s, {down:.0f} s)",
            members,
        )
        await finish(rig, load, figures, fault_figures, started)


# ------------------------------------------------------------------------------- worker
async def test_worker_killed_mid_load(database_url, tmp_path, long_faults, fault_figures):
    """The worker is SIGKILLed while journeys are sending; a new one starts at once.
    Activities that were running in the dead worker are retried after their timeout; a
    delivery whose claim was taken but whose outcome was never recorded is settled in doubt,
    never sent a second time."""
    started = time.monotonic()
    members = size(long_faults, 40, 400)
    async with Rig(tmp_path / "rig", database_url) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="wrk", batch=10)
        sending = asyncio.create_task(load.run(pause=0.05))
        due = load.due
        await eventually(when_delivered(rig, due // 4), timeout=180, what="a quarter delivered")
        rig.kill("worker")
        await asyncio.sleep(0.5)
        rig.start("worker")
        await eventually(when_delivered(rig, due // 2), timeout=240, what="half delivered")
        rig.kill("worker")
        rig.start("worker")
        await asyncio.wait_for(sending, 300)
        figures = Figures("worker SIGKILLed mid-load", "SIGKILL worker x2", members)
        # Each kill can catch at most the sends then in flight between claim and outcome.
        await finish(rig, load, figures, fault_figures, started, in_doubt_allowed=8)


# ------------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
async def private_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL server of the scenario's own, which it may stop and start."""
    from journeyman.engine.runtime.db import migrate

    root = Path(tempfile.mkdtemp(prefix="journeyman-faults-pg-"))
    pg = EmbeddedPostgres(root / "data")
    await asyncio.to_thread(pg.start)
    try:
        await migrate(pg.url)
        yield pg
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(root, ignore_errors=True)


async def test_postgres_restarted_during_ingestion(
    private_postgres, tmp_path, long_faults, fault_figures
):
    """PostgreSQL stops (fast shutdown: every connection is cut) while events arrive and
    journeys run, and comes back after two seconds. The API answers 5xx meanwhile and the
    client retries; worker and dispatcher reconnect."""
    started = time.monotonic()
    members = size(long_faults, 40, 400)
    pg = private_postgres
    url = pg.url
    async with Rig(tmp_path / "rig", url) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="pg", batch=10)
        sending = asyncio.create_task(load.run(pause=0.05))
        await eventually(when_acknowledged(load, 0.4), timeout=120, what="40% acknowledged")
        assert not sending.done(), "the fault must land during ingestion"
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(pg.start)
        assert pg.url == url, "the restarted server must answer on the same socket"
        await rig.reconnect_pool()
        await asyncio.wait_for(sending, 300)
        figures = Figures("PostgreSQL restarted during ingestion", "pg_ctl stop, 2 s", members)
        figures.notes.append(f"client batches that exhausted their retries: {load.requests_failed}")
        await finish(rig, load, figures, fault_figures, started)


# ------------------------------------------------------------------------------- Temporal
async def test_temporal_restarted_with_journeys_waiting(
    database_url, tmp_path, long_faults, fault_figures
):
    """Every journey has sent its reminder and waits on its coupon timer when the Temporal
    server stops; more carts arrive while it is down. After the restart (same SQLite
    history) the timers fire, the new carts are routed, and every message goes out once."""
    started = time.monotonic()
    members = size(long_faults, 30, 300)
    timings = Timings(coupon_delay=12.0)
    async with Rig(tmp_path / "rig", database_url, timings=timings) as rig:
        await rig.start_all()
        first = Load(rig, members, tag="tmp")
        await first.run()
        reminders = sum(1 for m in first.members if not m.holdout)
        await eventually(when_delivered(rig, reminders), timeout=180, what="every reminder")
        await asyncio.to_thread(rig.temporal.stop)
        second = Load(rig, members // 2, tag="tmp2")
        await second.run()  # stored while Temporal is down; routed after the restart
        await asyncio.sleep(3.0)
        await asyncio.to_thread(rig.temporal.start)
        figures = Figures(
            "Temporal restarted with journeys waiting",
            "dev server stopped ~5 s during timers",
            members + members // 2,
        )
        both = Load(rig, 0, tag="tmp")
        both.members = first.members + second.members
        both.events = first.events + second.events
        both.acknowledged = {**first.acknowledged, **second.acknowledged}
        await finish(rig, both, figures, fault_figures, started)


# ------------------------------------------------------------------------------- providers
async def test_providers_failing_intermittently(database_url, tmp_path, long_faults, fault_figures):
    """The SMTP server answers 451 and Twilio 429 (Retry-After 1) in waves; Twilio also
    answers 500 a few times without taking the message, and a few times after taking it.
    Refusals are retried by Temporal and delivered once. A 500 after the POST may have been
    accepted: the delivery is reconciled with Twilio's message list, so a message Twilio
    has is recorded sent (not sent again) and one it does not have is sent once."""
    started = time.monotonic()
    members = size(long_faults, 40, 400)
    wave = size(long_faults, 12, 60)
    not_taken, taken = 3, 3
    async with Rig(tmp_path / "rig", database_url) as rig:
        await rig.start_all()
        load = Load(rig, members, tag="prv", batch=10)

        def fail_wave() -> None:
            rig.smtp.reply("RCPT", "451 4.3.0 Try again later", times=wave)
            rig.twilio.rate_limit(times=wave, retry_after=1)

        # The first SMS requests get 500s (so they are surely used), then refusals in waves.
        rig.twilio.server_error(times=not_taken)
        rig.twilio.accept_then_fail(times=taken)
        fail_wave()
        sending = asyncio.create_task(load.run(pause=0.05))
        reminders = sum(1 for m in load.members if not m.holdout)
        await eventually(when_delivered(rig, reminders // 3), timeout=180, what="a third")
        fail_wave()
        await asyncio.wait_for(sending, 300)
        figures = Figures(
            "providers failing intermittently",
            f"SMTP 451 x{2 * wave}, Twilio 429 x{2 * wave}, Twilio 500 x{not_taken} "
            f"(not taken) and x{taken} (taken)",
            members,
        )
        figures.peer_failures_scripted = 4 * wave + not_taken + taken
        await finish(rig, load, figures, fault_figures, started)
    # Every scripted refusal was served (the faults happened) and retried.
    assert rig.smtp.attempts - len(rig.smtp.messages) == 2 * wave
    # (a message Twilio took before answering 500 is among its messages, once)
    assert rig.twilio.requests - len(rig.twilio.messages) == 2 * wave + not_taken
