"""Helpers shared by CLI commands: settings, the database URL, running coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.runtime.db import database_url
from rich.console import Console

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    return get_settings()


def db_url() -> str:
    return database_url(get_settings())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
