"""The plugin manager: built-ins and third-party packages load the same way, through the
`journeyman` entry-point group. `JOURNEYMAN_LOAD_PLUGINS` (comma-separated entry-point or
distribution names) restricts which load; an empty value loads none.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = hookspecs.PROJECT


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class LoadedPlugin:
    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)


@dataclass
class FailedPlugin:
    name: str
    target: str
    error: str


class PluginManager:
    def __init__(self, *, strict: bool = True, load: str | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.loaded: list[LoadedPlugin] = []
        self.failed: list[FailedPlugin] = []
        self._filter = None if load is None else {p.strip() for p in load.split(",") if p.strip()}
        self._load_entry_points()

    def _wanted(self, ep: md.EntryPoint) -> bool:
        if self._filter is None:
            return True
        dist = ep.dist.name if ep.dist is not None else None
        return ep.name in self._filter or (dist is not None and dist in self._filter)

    def _load_entry_points(self) -> None:
        seen: set[str] = set()
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen or not self._wanted(ep):
                continue
            seen.add(ep.name)
            try:
                module = ep.load()
            except Exception as exc:
                failure = FailedPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}")
                self.failed.append(failure)
                if self.strict:
                    raise PluginError(
                        f"plugin {ep.name!r} ({ep.value}) failed to load: {failure.error}"
                    ) from exc
                continue
            self.register(module, name=ep.name, distribution=ep.dist)

    def register(
        self, module: Any, *, name: str | None = None, distribution: md.Distribution | None = None
    ) -> None:
        """Register a plugin object or module directly (tests and embedding use this)."""
        name = name or getattr(module, "__name__", repr(module))
        self.pm.register(module, name=name)
        hooks = [h.name for h in self.pm.get_hookcallers(module) or []]
        self.loaded.append(
            LoadedPlugin(
                name=name,
                module=getattr(module, "__name__", repr(module)),
                distribution=distribution.name if distribution is not None else None,
                version=distribution.version if distribution is not None else None,
                hooks=sorted(hooks),
            )
        )

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call one registration hook on every plugin, remembering who registered what."""
        out: list[tuple[str, Any]] = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            impl.function(lambda item, _p=impl.plugin_name: out.append((_p, item)))
        return out

    def channels(self) -> dict[str, Any]:
        """Channel instances by name; two plugins registering one name is an error."""
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for plugin, channel in self._collect("register_channels"):
            name = getattr(channel, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin!r} registered a channel without a name")
            if name in found:
                raise PluginError(
                    f"channel {name!r} is registered by both plugin {owner[name]!r} "
                    f"and plugin {plugin!r}"
                )
            found[name] = channel
            owner[name] = plugin
        self.channel_owners = owner
        return found

    def journeys(self) -> dict[str, type]:
        """Journey classes by journey name; a duplicate name is an error naming both plugins."""
        found: dict[str, type] = {}
        owner: dict[str, str] = {}
        for plugin, cls in self._collect("register_journeys"):
            spec = getattr(cls, "__journey__", None)
            name = getattr(spec, "name", None) or getattr(cls, "__name__", None)
            if name in found:
                raise PluginError(
                    f"journey {name!r} is registered by both plugin {owner[name]!r} "
                    f"and plugin {plugin!r}"
                )
            found[name] = cls
            owner[name] = plugin
        self.journey_owners = owner
        return found


def get_plugin_manager(*, strict: bool = True) -> PluginManager:
    """A plugin manager honouring `JOURNEYMAN_LOAD_PLUGINS`."""
    return PluginManager(strict=strict, load=os.environ.get("JOURNEYMAN_LOAD_PLUGINS"))
