"""`journeyman migrate`, `journeyman store …` and `journeyman demo`."""

from __future__ import annotations

import typer

from .common import console, db_url, run


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate() -> None:
        """Apply every database migration (Alembic) to the configured database."""
        from engine.db import migrate as do_migrate

        url = db_url()
        run(do_migrate(url))
        console.print("[green]database is at the latest schema[/green]")

    @app.command()
    def demo(
        members: int = typer.Option(200, help="How many synthetic members."),
        events: int = typer.Option(10_000, help="How many synthetic events."),
        seed: int = typer.Option(7, help="Random seed of the generated shop."),
    ) -> None:
        """Run the demo on the embedded stack."""
        from engine.demo import run_demo

        run(run_demo(members=members, events=events, seed=seed))
