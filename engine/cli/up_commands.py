"""`journeyman up` (the whole engine on one machine), `journeyman report` (journey funnels
and lift) and `journeyman demo`."""

from __future__ import annotations

import typer

from .common import console, db_url, err_console, run, settings


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("report")(report)
    app.command("demo")(demo)


def demo(
    members: int = typer.Option(700, help="Members of the synthetic shop."),
    events: int = typer.Option(17_000, help="Events of history (about)."),
    seed: int = typer.Option(7, help="Seed of the shop and the behaviour model."),
    day_seconds: float = typer.Option(4.0, help="Real seconds per simulated day."),
    live_days: float = typer.Option(3.0, help="Simulated days of live registrations and carts."),
    keep_running: bool = typer.Option(
        False, help="Keep the engine (and the dashboard) running after the report."
    ),
) -> None:
    """The end-to-end demo: the engine on real parts, a synthetic shop with a behaviour model
    of known effect, journeys on Temporal, messages to local SMTP and Twilio peers, members
    responding to what they received; then funnels and measured vs true lift."""
    from journeyman.engine.demo.run import run_demo

    run(
        run_demo(
            members=members,
            events=events,
            seed=seed,
            day_seconds=day_seconds,
            live_days=live_days,
            console=console,
            keep_running=keep_running,
        )
    )


def up(
    api_port: int | None = typer.Option(
        None,
        help="API and dashboard port (default: JOURNEYMAN_API_PORT, 8787); 0 picks a free "
        "one. A taken port is refused.",
    ),
    temporal_port: int | None = typer.Option(
        None,
        help="Temporal frontend port (default: 7233 if free, else any; a given port must be free).",
    ),
    ui_port: int | None = typer.Option(
        None,
        help="Temporal web UI port (default: 8233 if free, else any; a given port must be free).",
    ),
    local_dashboard: bool = typer.Option(
        True, help="Let requests from 127.0.0.1 open the dashboard without a key."
    ),
) -> None:
    """Run everything on this machine: PostgreSQL, Temporal (with its web UI), migrations,
    worker, dispatcher, scheduler and the HTTP API with the dashboard. Ctrl-C or SIGTERM
    stops it; state stays in the data directory (JOURNEYMAN_DATA_DIR, default .journeyman/),
    which one `journeyman up` at a time may use."""
    import asyncio

    from journeyman.engine.runtime.up import PartFailed, Up
    from journeyman.engine.runtime.up_lock import DataDirBusy

    s = settings()

    def status(part: str, state: str, detail: str) -> None:
        colour = {"ready": "green", "external": "cyan", "stopped": "yellow"}.get(state, "white")
        console.print(
            f"  [bold]{part:<11}[/bold] [{colour}]{state:<8}[/{colour}] {detail}", soft_wrap=True
        )

    async def go() -> int:
        engine = Up(
            s,
            api_port=s.api_port if api_port is None else api_port,
            temporal_port=temporal_port,
            ui_port=ui_port,
            local_dashboard=local_dashboard,
            status=status,
        )
        # Before anything starts: a signal during startup stops what has started.
        engine.catch_signals()
        console.print(f"[bold]journeyman up[/bold] — data directory {s.data_dir.resolve()}")
        try:
            await engine.start()
            console.print(
                f"[bold green]up[/bold green]: dashboard {engine.api_url}/dashboard · "
                f"Temporal UI {engine.temporal_ui or engine.temporal_address} · "
                "Ctrl-C to stop"
            )
            await engine.wait()
            console.print("stopping…")
            return 0
        except asyncio.CancelledError:
            if not engine.stop_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            console.print("stopped while starting")
            return 0
        except (PartFailed, DataDirBusy) as err:
            err_console.print(f"[red]{err}[/red]")
            return 1
        finally:
            await engine.stop()

    raise typer.Exit(run(go()))


def report(
    journey: str | None = typer.Argument(None, help="One journey (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Funnels per journey and variant, lift over the holdout with 95% intervals."""
    import json

    import asyncpg
    from journeyman.engine.analytics.report import journey_stats
    from journeyman.engine.runtime.db import asyncpg_dsn

    replica = settings().analytics_database_url

    async def go():  # type: ignore[no-untyped-def]
        conn = await asyncpg.connect(asyncpg_dsn(replica) if replica else db_url())
        try:
            return await journey_stats(conn, journey)
        finally:
            await conn.close()

    from journeyman.engine.analytics.report import ProjectionBehind

    try:
        stats = run(go())
    except ProjectionBehind as exc:
        err_console.print(str(exc))
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in stats], indent=2, default=str))
        return
    if not stats:
        console.print("no journey has recorded an entry yet")
        return
    for table in report_tables(stats):
        console.print(table)


def report_tables(stats: list) -> list:  # type: ignore[type-arg]
    """Rich tables: one funnel table for all journeys, one lift table."""
    from rich.table import Table

    funnel = Table(title="Funnel per journey and group (from the events in the store)")
    for col in ("journey", "group", "entered", "messaged", "delivered", "clicked", "converted"):
        funnel.add_column(col, justify="left" if col in ("journey", "group") else "right")
    funnel.add_column("rate", justify="right")
    funnel.add_column("revenue", justify="right")
    lift = Table(title="Lift of treatment over holdout (95% intervals)")
    for col in ("journey", "conversion lift", "interval", "revenue / entry lift", "interval"):
        lift.add_column(col, justify="left" if col == "journey" else "right")
    for s in stats:
        groups = [*sorted(s.variants.items()), ("holdout", s.holdout)]
        for i, (name, f) in enumerate(groups):
            funnel.add_row(
                s.journey if i == 0 else "",
                name,
                str(f.entered),
                str(f.messaged),
                str(f.delivered),
                str(f.clicked),
                str(f.converted),
                f"{100 * f.conversion_rate:.1f}%",
                f"{f.revenue:,.2f}",
            )
        conv, rev = s.conversion_lift(), s.revenue_lift()
        if conv is None:
            lift.add_row(s.journey, "no holdout", "", "", "")
        else:
            lift.add_row(
                s.journey,
                f"{100 * conv.estimate:+.1f} pp",
                f"[{100 * conv.low:+.1f}, {100 * conv.high:+.1f}]",
                f"{rev.estimate:+.2f}" if rev else "",
                f"[{rev.low:+.2f}, {rev.high:+.2f}]" if rev else "",
            )
    return [funnel, lift]
