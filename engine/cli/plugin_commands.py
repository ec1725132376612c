"""`journeyman plugins`: what is loaded, from where, and which channels are ready."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from .common import console, err_console


def register(app: typer.Typer) -> None:
    @app.command()
    def plugins(
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
        strict: bool = typer.Option(
            False, "--strict", help="Fail (exit 1) when any plugin fails to load."
        ),
    ) -> None:
        """List plugins with their versions, hooks, channels and journeys.

        Honours JOURNEYMAN_LOAD_PLUGINS. Channel settings come from
        JOURNEYMAN_CHANNELS__<NAME>__<FIELD>; secrets are never shown.
        """
        from journeyman.engine.core.settings import get_settings
        from journeyman.engine.delivery.workers import channel_settings
        from journeyman.plugins import PluginError, get_plugin_manager

        try:
            pm = get_plugin_manager(strict=strict)
            report = pm.report(channel_settings(get_settings()))
        except PluginError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        if as_json:
            typer.echo(json.dumps(report, indent=2, default=str))
        else:
            _print_tables(report)
        if report["failed"]:
            raise typer.Exit(1)


def _print_tables(report: dict) -> None:
    plugins = Table(title="Plugins")
    for column in ("name", "distribution", "version", "hooks", "provides", "module"):
        plugins.add_column(column, overflow="fold")
    for p in report["plugins"]:
        provides = ", ".join(
            p["channels"] + p["journeys"] + [f"segment {s}" for s in p.get("segments", [])]
        )
        plugins.add_row(
            p["name"],
            p["distribution"] or "-",
            p["version"] or "-",
            ", ".join(p["hooks"]),
            provides,
            p["module"],
        )
    console.print(plugins)
    channels = Table(title="Channels")
    for column in ("channel", "plugin", "contact", "rate/s", "task queue", "status"):
        channels.add_column(column, overflow="fold")
    for c in report["channels"]:
        status = (
            "[green]configured[/green]" if c["configured"] else "[yellow]not configured[/yellow]"
        )
        channels.add_row(
            c["name"],
            c["plugin"],
            c["contact"],
            f"{c['rate_limit_per_second']:g}",
            c["task_queue"],
            status,
        )
    console.print(channels)
    for c in report["channels"]:
        if not c["configured"]:
            console.print(f"{c['name']}: {c['not_configured_reason']}")
    for f in report["failed"]:
        console.print(f"[red]failed[/red] {f['name']} ({f['target']}): {f['error']}")
