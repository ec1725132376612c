"""One database URL, spelled for each driver: users write any PostgreSQL URL, asyncpg and
SQLAlchemy (Alembic) each want their own scheme."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` or `postgres://…` -> the `postgresql://…` asyncpg expects."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", *parts[1:]))


def sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL -> `postgresql+asyncpg://…`, SQLAlchemy's async driver."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))
