"""Where the database is: the configured URL, or the embedded PostgreSQL in the data directory."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from .settings import Settings


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` or `postgres://…` -> the `postgresql://…` asyncpg expects."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def sqlalchemy_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


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
