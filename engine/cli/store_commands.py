"""`journeyman migrate` and `journeyman store …` (the demo is in `up_commands`)."""

from __future__ import annotations

import typer

from .common import console, db_url, run


def register(app: typer.Typer) -> None:
    @app.command()
    def migrate() -> None:
        """Apply every database migration (Alembic) to the configured database."""
        from journeyman.engine.runtime.db import migrate as do_migrate

        url = db_url()
        run(do_migrate(url))
        console.print("[green]database is at the latest schema[/green]")
