"""A reduced demo on the real stack — embedded PostgreSQL, the Temporal dev server, worker,
dispatcher, scheduler and API as child processes, a real SMTP server and a Twilio-speaking
peer — and every count reconciled: messages at the peers = `message.sent` events = ledger
rows, and the funnel the API reports = what the store holds, journey by journey."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.demo.journeys import JOURNEYS
from journeyman.engine.demo.run import run_demo
from journeyman.engine.runtime.stack import EmbeddedPostgres
from pydantic import SecretStr
from rich.console import Console

pytestmark = [pytest.mark.slow, pytest.mark.devserver]


@pytest.fixture(scope="module")
async def demo():  # type: ignore[no-untyped-def]
    # Not under pytest's private basetemp: embedded PostgreSQL runs as its own OS user.
    root = Path(tempfile.mkdtemp(prefix="journeyman-e2e-"))
    data = root / "data"
    settings = Settings(data_dir=data, secret_key=SecretStr("e2e-demo-secret-" + "d" * 32))
    out = io.StringIO()
    report = await run_demo(
        members=160,
        events=2_500,
        seed=11,
        day_seconds=2.0,
        live_days=2.0,
        settings=settings,
        console=Console(file=out, width=160),
    )
    # The engine has stopped; open its database again and count independently.
    pg = EmbeddedPostgres(data / "postgres")
    conn = await asyncpg.connect(pg.start())
    try:
        ids = [pid for _, pid in report.peer_messages]
        db = {
            "ledger": await conn.fetch(
                "SELECT provider_message_id, delivery_id, journey FROM message_ledger "
                "WHERE provider_message_id = ANY($1::text[])",
                ids,
            ),
            "sent": await conn.fetch(
                "SELECT data->>'delivery_id' AS d FROM events WHERE type = 'message.sent'"
            ),
            "counts": {
                (r["j"], r["type"], r["holdout"]): r["n"]
                for r in await conn.fetch(
                    "SELECT data->>'journey' AS j, type, "
                    "coalesce((data->>'holdout')::boolean, false) AS holdout, "
                    "count(DISTINCT data->>'entry_id') AS n FROM events "
                    "WHERE type IN ('journey.entered', 'journey.converted') GROUP BY 1, 2, 3"
                )
            },
            "withheld": {
                r["j"]: r["n"]
                for r in await conn.fetch(
                    "SELECT data->>'journey' AS j, count(DISTINCT data->>'entry_id') AS n "
                    "FROM events WHERE type = 'journey.message_withheld' GROUP BY 1"
                )
            },
            "running": await conn.fetchval("SELECT count(*) FROM journey_instances WHERE running"),
            "delivered": {
                r["channel"]: r["n"]
                for r in await conn.fetch(
                    "SELECT data->>'channel' AS channel, count(*) AS n FROM events "
                    "WHERE type = 'message.delivered' GROUP BY 1"
                )
            },
        }
    finally:
        await conn.close()
        pg.stop()
    yield report, db, out.getvalue(), settings
    shutil.rmtree(root, ignore_errors=True)


async def test_every_message_at_a_peer_is_one_sent_event_and_one_ledger_row(demo) -> None:
    report, db, _, _ = demo
    assert report.peers["email"] > 20 and report.peers["sms"] > 5
    for channel in ("email", "sms"):
        assert report.peers[channel] == report.sent_events[channel] == report.ledger[channel]
    ids = [pid for _, pid in report.peer_messages]
    assert len(ids) == len(set(ids)), "a peer received the same message twice"
    rows = db["ledger"]
    assert len(rows) == len(ids), "a message at a peer has no ledger row"
    assert {r["delivery_id"] for r in rows} == {r["d"] for r in db["sent"]}
    # The Twilio peer reported every SMS delivered, signed; each receipt is one event.
    assert db["delivered"].get("sms") == report.peers["sms"]
    assert report.responses["SMS delivery receipt"] == report.peers["sms"]
    at_peers_by_journey = Counter(r["journey"] for r in rows)
    for name in JOURNEYS:
        stats = report.journeys[name].stats
        assert sum(c["sent"] for c in stats["channels"].values()) == at_peers_by_journey[name]
        sms = stats["channels"].get("sms")
        if sms:
            assert sms["delivered"] == sms["sent"]


async def test_the_reported_funnels_match_the_store(demo) -> None:
    report, db, _, _ = demo
    counts, withheld, running = db["counts"], db["withheld"], db["running"]
    assert running == 0, "the demo reported before every journey had finished"
    total_entered = 0
    for name in JOURNEYS:
        s = report.journeys[name].stats
        for group, holdout in (("treatment", False), ("holdout", True)):
            assert s[group]["entered"] == counts.get((name, "journey.entered", holdout), 0)
            assert s[group]["converted"] == counts.get((name, "journey.converted", holdout), 0)
            assert s[group]["messaged"] <= s[group]["entered"]
        assert s["holdout"]["messaged"] == withheld.get(name, 0)
        assert s["holdout"]["clicked"] == 0  # the holdout was sent nothing to click
        total_entered += s["total"]["entered"]
    cart = report.journeys["cart_recovery"].stats
    assert cart["treatment"]["entered"] > 20
    assert total_entered > 60
    assert report.responses["cart left"] > 0 and report.responses["registered"] > 0


async def test_the_report_shows_measured_beside_true_lift(demo) -> None:
    report, _, printed, _ = demo
    assert "Funnel per journey" in printed
    assert "true lift" in printed and "measured lift" in printed
    assert "Every message accounted for" in printed
    for name in ("cart_recovery", "welcome", "winback"):
        j = report.journeys[name]
        if j.stats["holdout"]["entered"]:
            assert j.true_lift is not None and 0 < j.true_lift < 0.5
    assert "/dashboard" in printed


async def test_running_the_demo_again_stores_nothing_twice(demo) -> None:
    report, _, _, settings = demo
    again = await run_demo(
        members=160,
        events=2_500,
        seed=11,
        day_seconds=2.0,
        live_days=2.0,
        settings=settings,
        console=Console(file=io.StringIO(), width=160),
    )
    assert again.rerun and again.stored == 0 and again.duplicates > 1000
    for name in JOURNEYS:
        assert again.journeys[name].stats["total"] == report.journeys[name].stats["total"]
