"""The `journeyman` command. Each area adds its commands from its own module."""

from __future__ import annotations

import typer

from . import (
    deadletter_commands,
    deployment_commands,
    ingest_commands,
    journey_commands,
    member_commands,
    plugin_commands,
    store_commands,
    up_commands,
)

app = typer.Typer(
    name="journeyman",
    help="Journeyman: event-sourced marketing automation.",
    no_args_is_help=True,
    add_completion=False,
)

for _module in (
    store_commands,
    plugin_commands,
    ingest_commands,
    journey_commands,
    deployment_commands,
    up_commands,
    member_commands,
    deadletter_commands,
):
    _module.register(app)


def main() -> None:
    from .process_exit import run_command

    run_command(app)
