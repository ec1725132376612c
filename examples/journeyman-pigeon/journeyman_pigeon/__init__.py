"""journeyman-pigeon: an example Journeyman channel plugin.

Installing this package is all it takes: its `journeyman` entry point names this module, and
Journeyman's plugin manager calls the hook below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from journeyman.plugins import hookimpl

from .channel import PigeonChannel, PigeonConfig

__all__ = ["PigeonChannel", "PigeonConfig", "register_channels"]


@hookimpl
def register_channels(register: Callable[[Any], None]) -> None:
    register(PigeonChannel())
