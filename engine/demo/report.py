"""The demo's report: each journey's funnel and measured lift beside the behaviour model's
true lift, and every message at the protocol peers reconciled with `message.sent` events and
ledger rows. Everything in it is read from the store and the API after the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table

from .journeys import JOURNEYS

if TYPE_CHECKING:
    from .run import DemoRun


@dataclass
class JourneyResult:
    name: str
    stats: dict[str, Any]
    true_lift: float | None
    entrants: int


@dataclass
class DemoReport:
    journeys: dict[str, JourneyResult] = field(default_factory=dict)
    peers: dict[str, int] = field(default_factory=dict)
    """Messages accepted by the SMTP (email) and Twilio (sms) peers."""
    sent_events: dict[str, int] = field(default_factory=dict)
    """`message.sent` events in the store, by channel."""
    ledger: dict[str, int] = field(default_factory=dict)
    """Message ledger rows with a sent (or later) status, by channel."""
    peer_messages: list[tuple[str, str]] = field(default_factory=list)
    """(channel, provider message id) of every message the peers accepted."""
    responses: Counter[str] = field(default_factory=Counter)
    stored: int = 0
    duplicates: int = 0
    api_url: str = ""
    mail_dir: Path | None = None
    seconds: float = 0.0
    rerun: bool = False


async def collect(
    run: DemoRun, conn: asyncpg.Connection, http: httpx.AsyncClient, peers: tuple[Any, Any]
) -> None:
    report = run.report
    smtp, twilio = peers
    report.peers = {"email": len(smtp.messages), "sms": len(twilio.messages)}
    report.peer_messages = [("email", str(m["Message-ID"])) for m in smtp.messages] + [
        ("sms", m.sid) for m in twilio.messages
    ]
    report.mail_dir = run.mail_dir
    for r in await conn.fetch(
        "SELECT data->>'channel' AS channel, count(*) AS n FROM events "
        "WHERE type = 'message.sent' GROUP BY 1"
    ):
        report.sent_events[r["channel"]] = r["n"]
    for r in await conn.fetch(
        "SELECT channel, count(*) AS n FROM message_ledger WHERE sent_at IS NOT NULL GROUP BY 1"
    ):
        report.ledger[r["channel"]] = r["n"]
    entrants: dict[str, list[str]] = {}
    treated: dict[str, list[str]] = {}
    for r in await conn.fetch(
        "SELECT data->>'journey' AS journey, stream_id, "
        "coalesce((data->>'holdout')::boolean, false) AS holdout "
        "FROM events WHERE type = 'journey.entered'"
    ):
        member = r["stream_id"].removeprefix("member-")
        entrants.setdefault(r["journey"], []).append(member)
        if not r["holdout"]:
            treated.setdefault(r["journey"], []).append(member)
    # What each member actually received in each journey: the true effect of the treatment
    # is the model's effect of *these* messages (not of every message the journey plans).
    received: dict[tuple[str, str], list[str]] = {}
    for r in await conn.fetch(
        "SELECT journey, member_id, template FROM message_ledger WHERE sent_at IS NOT NULL "
        "ORDER BY sent_at"
    ):
        received.setdefault((r["journey"], r["member_id"]), []).append(r["template"])
    for name in JOURNEYS:
        stats = (await http.get(f"/v1/journeys/{name}/stats")).json()
        members = entrants.get(name, [])
        truth = (
            run.model.true_lift_of_received(
                treated.get(name, []), name, lambda m, j=name: received.get((j, m), [])
            )
            if stats["holdout"]["entered"]
            else None
        )
        report.journeys[name] = JourneyResult(name, stats, truth, len(members))


def print_report(report: DemoReport, console: Console) -> None:
    funnel = Table(title="Funnel per journey (from the events in the store)")
    for col in ("journey", "group", "entered", "messaged", "delivered", "clicked", "converted"):
        funnel.add_column(col, justify="left" if col in ("journey", "group") else "right")
    funnel.add_column("rate", justify="right")
    lift = Table(title="Conversion lift over the holdout: measured (95% interval) vs true")
    for col in ("journey", "treatment", "holdout", "measured lift", "95% interval", "true lift"):
        lift.add_column(col, justify="left" if col == "journey" else "right")
    for name, j in report.journeys.items():
        s = j.stats
        for i, (group, f) in enumerate([("treatment", s["treatment"]), ("holdout", s["holdout"])]):
            funnel.add_row(
                name if i == 0 else "",
                group,
                str(f["entered"]),
                str(f["messaged"]),
                str(f["delivered"]),
                str(f["clicked"]),
                str(f["converted"]),
                f"{100 * f['conversion_rate']:.1f}%",
            )
        conv = s["lift"]["conversion_rate"]
        if conv is None:
            lift.add_row(name, "", "", "no holdout group", "", "")
        else:
            covered = conv["low"] <= (j.true_lift or 0) <= conv["high"]
            lift.add_row(
                name,
                f"{100 * s['treatment']['conversion_rate']:.1f}% of {s['treatment']['entered']}",
                f"{100 * s['holdout']['conversion_rate']:.1f}% of {s['holdout']['entered']}",
                f"{100 * conv['estimate']:+.1f} pp",
                f"[{100 * conv['low']:+.1f}, {100 * conv['high']:+.1f}]",
                f"{100 * (j.true_lift or 0):+.1f} pp {'(inside)' if covered else '(outside)'}",
            )
    console.print(funnel)
    console.print(lift)
    recon = Table(title="Every message accounted for")
    for col in ("channel", "received by the peer", "message.sent events", "ledger rows"):
        recon.add_column(col, justify="left" if col == "channel" else "right")
    for ch in sorted(set(report.peers) | set(report.sent_events) | set(report.ledger)):
        recon.add_row(
            ch,
            str(report.peers.get(ch, 0)),
            str(report.sent_events.get(ch, 0)),
            str(report.ledger.get(ch, 0)),
        )
    console.print(recon)
    if report.responses:
        console.print(
            "members' responses sent back over HTTP: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report.responses.items()))
        )
    console.print(
        f"events stored this run: {report.stored:,} ({report.duplicates:,} already stored); "
        "true lift = the behaviour model's known effect of the messages treatment members "
        "actually received; the measured lift is computed from the store alone."
    )
    if report.mail_dir is not None:
        console.print(f"delivered messages as received by the peers: {report.mail_dir}/")
    console.print(
        f"dashboard: {report.api_url}/dashboard (while the engine runs: `journeyman demo "
        "--keep-running`, or `journeyman up` over the same data directory)"
    )
    console.print(f"demo finished in {report.seconds:.0f} s")
