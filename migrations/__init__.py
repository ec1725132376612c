"""Alembic migrations: the only way Journeyman's schema changes.

`upgrade(url)` applies them all and runs `ANALYZE` (plans chosen on never-analysed tables
fall back to sequential scans).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config
    from journeyman.event_store.urls import sqlalchemy_url

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    import asyncio

    import asyncpg
    from journeyman.event_store.urls import asyncpg_dsn

    async def read() -> str | None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return await conn.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return None
        finally:
            await conn.close()

    return asyncio.run(read())
