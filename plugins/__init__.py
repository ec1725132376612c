"""Journeyman's plugin system (pluggy, project and entry-point group `journeyman`)."""

from .hookspecs import PROJECT, hookimpl, hookspec
from .manager import (
    ENTRY_POINT_GROUP,
    FailedPlugin,
    LoadedPlugin,
    PluginError,
    PluginManager,
    get_plugin_manager,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "FailedPlugin",
    "LoadedPlugin",
    "PluginError",
    "PluginManager",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
]
