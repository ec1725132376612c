"""The hooks a Journeyman plugin can implement.

Every hook takes a `register` callback, as in `llm`: the plugin calls it once per thing it
provides. Built-in channels and journeys use exactly these hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "journeyman"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_channels(register: Callable[[Any], None]) -> None:
    """Register channel instances: call `register(channel)` for each."""


@hookspec
def register_journeys(register: Callable[[type], None]) -> None:
    """Register journey classes (decorated with `@journey`): call `register(cls)` for each."""
