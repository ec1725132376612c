"""Where the database is: the configured URL, or the embedded PostgreSQL in the data directory."""

from __future__ import annotations

import asyncio

from journeyman.engine.core.settings import Settings
from journeyman.event_store.urls import asyncpg_dsn, sqlalchemy_url

__all__ = ["asyncpg_dsn", "database_url", "migrate", "sqlalchemy_url"]


def database_url(settings: Settings) -> str:
    """The configured database URL, starting the embedded PostgreSQL when none is set."""
    if settings.database_url:
        return asyncpg_dsn(settings.database_url)
    from .stack import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.data_dir / "postgres")
    pg.start()
    return pg.url


async def migrate(url: str) -> None:
    """Apply every migration (Alembic) and refresh planner statistics."""
    from journeyman.migrations import upgrade

    await asyncio.to_thread(upgrade, url)
