"""The plugin manager: built-ins and third-party packages load the same way, through the
`journeyman` entry-point group.

`JOURNEYMAN_LOAD_PLUGINS` (comma-separated entry-point or distribution names) restricts
which load; an empty value loads none. Loading is strict by default: a plugin that fails to
import, implements a hook that does not exist, or fails inside a registration hook raises
`PluginError` naming the plugin and the error — a worker must never start with a channel
silently missing. With `strict=False` (for listing and diagnosis) failures are collected in
`PluginManager.failed` instead.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy
from journeyman.channels.base import Channel

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
    location: str | None = None
    channels: list[str] = field(default_factory=list)
    journeys: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)


@dataclass
class FailedPlugin:
    name: str
    target: str
    error: str


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class PluginManager:
    def __init__(self, *, strict: bool = True, load: str | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = strict
        self.loaded: list[LoadedPlugin] = []
        self.failed: list[FailedPlugin] = []
        self.channel_owners: dict[str, str] = {}
        self.journey_owners: dict[str, str] = {}
        self.segment_owners: dict[str, str] = {}
        self._segments: dict[str, Any] | None = None
        self._filter = (
            None if load is None else {_normalise(p.strip()) for p in load.split(",") if p.strip()}
        )
        self._load_entry_points()

    # -- loading -------------------------------------------------------------------------

    def _wanted(self, ep: md.EntryPoint) -> bool:
        if self._filter is None:
            return True
        dist = ep.dist.name if ep.dist is not None else None
        return _normalise(ep.name) in self._filter or (
            dist is not None and _normalise(dist) in self._filter
        )

    def _fail(self, name: str, target: str, error: str, exc: BaseException | None) -> None:
        failure = FailedPlugin(name, target, error)
        self.failed.append(failure)
        if self.strict:
            raise PluginError(f"plugin {name!r} ({target}) failed to load: {error}") from exc

    def _load_entry_points(self) -> None:
        seen: dict[str, str] = {}
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if not self._wanted(ep):
                continue
            if ep.name in seen:
                if seen[ep.name] == ep.value:
                    continue  # the same distribution seen twice on sys.path
                self._fail(
                    ep.name,
                    ep.value,
                    f"the entry point name {ep.name!r} is also used by {seen[ep.name]}",
                    None,
                )
                continue
            seen[ep.name] = ep.value
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(ep.name, ep.value, f"{type(exc).__name__}: {exc}", exc)
                continue
            try:
                self.register(module, name=ep.name, distribution=ep.dist)
            except PluginError as exc:
                self._fail(ep.name, ep.value, str(exc), exc)

    def register(
        self, module: Any, *, name: str | None = None, distribution: md.Distribution | None = None
    ) -> None:
        """Register a plugin object or module directly (tests and embedding use this)."""
        name = name or getattr(module, "__name__", repr(module))
        self.pm.register(module, name=name)
        self._segments = None
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(module)
            raise PluginError(
                f"plugin {name!r} implements a hook Journeyman does not have: {exc}"
            ) from exc
        hooks = [h.name for h in self.pm.get_hookcallers(module) or []]
        self.loaded.append(
            LoadedPlugin(
                name=name,
                module=getattr(module, "__name__", repr(module)),
                distribution=distribution.name if distribution is not None else None,
                version=distribution.version if distribution is not None else None,
                hooks=sorted(hooks),
                location=getattr(module, "__file__", None),
            )
        )

    # -- collecting ----------------------------------------------------------------------

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call one registration hook on every plugin, remembering who registered what."""
        out: list[tuple[str, Any]] = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # in registration order
            plugin = impl.plugin_name

            def register(*items: Any, _plugin: str = plugin) -> None:
                # One thing per call; a hook registering several parts of one thing
                # (a template's name and parts) passes them together.
                out.append((_plugin, items[0] if len(items) == 1 else items))

            try:
                impl.function(register)
            except Exception as exc:
                message = f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                if self.strict:
                    raise PluginError(message) from exc
                self.failed.append(FailedPlugin(plugin, hook_name, message))
                out[:] = [(p, item) for p, item in out if p != plugin]
        return out

    def _plugin(self, name: str) -> LoadedPlugin | None:
        return next((p for p in self.loaded if p.name == name), None)

    def channels(
        self, settings: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Channel]:
        """Channel instances by name, from every plugin's `register_channels`.

        With `settings` (the `channels` section of the settings, by channel name), each
        channel is configured from its entry; a channel without an entry keeps its defaults
        and is reported as not configured when it needs credentials. A duplicate name is an
        error naming both plugins.
        """

        def name_of(plugin: str, channel: Any) -> str:
            if not isinstance(channel, Channel):
                raise PluginError(
                    f"plugin {plugin!r} registered {channel!r}, "
                    "which is not a journeyman.channels.Channel"
                )
            name = getattr(channel, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {plugin!r} registered a channel without a name")
            return name

        found, self.channel_owners = self._by_name("register_channels", "channel", name_of)
        if settings is not None:
            for name, channel in found.items():
                if name in settings:
                    channel.configure(settings[name])
        return found

    def journeys(self) -> dict[str, type]:
        """Journey classes by journey name; a duplicate name is an error naming both plugins.

        A journey that starts on entry into a segment (`trigger=segment_entry(name)`) that no
        loaded plugin registers is an error too, whatever `strict` says: nothing would ever
        append that segment's `segment.entered`, so the journey would never start, silently.
        The worker and the dispatcher both get their journeys here, so the mistake (a typo,
        or the plugin that defines the segment not installed or not in
        `JOURNEYMAN_LOAD_PLUGINS`) stops them at start instead of surfacing weeks later as a
        journey nobody entered.
        """

        def name_of(plugin: str, cls: Any) -> str:
            spec = getattr(cls, "__journey__", None)
            return getattr(spec, "name", None) or getattr(cls, "__name__", None) or repr(cls)

        found, owner = self._by_name("register_journeys", "journey", name_of)
        self.journey_owners = owner
        self._check_segment_triggers(found, owner)
        return found

    def _check_segment_triggers(
        self, journeys: Mapping[str, type], owner: Mapping[str, str]
    ) -> None:
        wanted: dict[str, str] = {}
        for name, cls in journeys.items():
            trigger = getattr(getattr(cls, "__journey__", None), "trigger", None)
            if getattr(trigger, "kind", None) == "segment":
                wanted[name] = trigger.segment  # type: ignore[union-attr]
        if not wanted:
            return
        # Collected once: a lenient manager records a failing plugin each time it is asked.
        segments = self._segments if self._segments is not None else self.segments()
        for name, segment in sorted(wanted.items()):
            if segment not in segments:
                known = ", ".join(sorted(segments)) or "none"
                raise PluginError(
                    f"journey {name!r} (plugin {owner[name]!r}) starts on entry into segment "
                    f"{segment!r}, which no loaded plugin registers (registered: {known}); "
                    "register it in a register_segments hook, load the plugin that does, "
                    "or correct the name"
                )

    def segments(self) -> dict[str, Any]:
        """Segments (`journeyman.workflows.Segment`) by name, from every plugin's
        `register_segments`; a duplicate name is an error naming both plugins. (Checked by
        shape, a name and a `when` test, so that plugins stay below the engine.)"""

        def name_of(plugin: str, segment: Any) -> str:
            name = getattr(segment, "name", None)
            if not isinstance(name, str) or not callable(getattr(segment, "when", None)):
                raise PluginError(
                    f"plugin {plugin!r} registered {segment!r}, which is not a "
                    "journeyman.workflows.Segment"
                )
            return name

        found, self.segment_owners = self._by_name("register_segments", "segment", name_of)
        self._segments = found
        return found

    def templates(self) -> dict[str, dict[str, str]]:
        """Templates plugins ship through `register_templates`, by name: their parts."""

        def name_of(plugin: str, item: Any) -> str:
            name, parts = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
            if not isinstance(name, str) or not name or not isinstance(parts, Mapping):
                raise PluginError(
                    f"plugin {plugin!r} registered template {name!r} without a mapping of parts"
                )
            return name

        found, self.template_owners = self._by_name("register_templates", "template", name_of)
        return {name: dict(parts) for name, (_, parts) in found.items()}

    def event_types(self) -> frozenset[str]:
        """The event types plugins declare through `register_event_types`."""
        found: set[str] = set()
        for plugin, name in self._collect("register_event_types"):
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin {plugin!r} declared {name!r}, which is not an event type"
                )
            found.add(name)
        return frozenset(found)

    def _by_name(
        self, hook: str, kind: str, name_of: Callable[[str, Any], str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """What every plugin registers through `hook`, by name, and the plugin owning each
        name; a duplicate name is an error naming both plugins. Each loaded plugin's list of
        `<kind>s` is filled in for the report."""
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for plugin, item in self._collect(hook):
            name = name_of(plugin, item)
            if name in found:
                raise PluginError(
                    f"{kind} {name!r} is registered by both plugin {owner[name]!r} "
                    f"and plugin {plugin!r}"
                )
            found[name] = item
            owner[name] = plugin
        for loaded in self.loaded:
            setattr(loaded, f"{kind}s", sorted(n for n, p in owner.items() if p == loaded.name))
        return found, owner

    # -- reporting -----------------------------------------------------------------------

    def report(
        self,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        describe: Callable[[Channel], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Everything `journeyman plugins` shows, JSON-ready: plugins (name, distribution,
        version, module, location, hooks, channels, journeys, segments), channels (with
        configured state, secrets masked), journeys, segments, and plugins that failed."""
        channels = self.channels(settings)
        try:
            found = self.segments()
            segments = [
                {"name": n, "description": s.description, "plugin": self.segment_owners[n]}
                for n, s in sorted(found.items())
            ]
        except PluginError as exc:
            self.failed.append(FailedPlugin("?", "register_segments", str(exc)))
            segments = []
        try:
            journeys = sorted(self.journeys())
        except PluginError as exc:
            self.failed.append(FailedPlugin("?", "register_journeys", str(exc)))
            journeys = []
        return {
            "plugins": [asdict(p) for p in self.loaded],
            "channels": [
                {**(describe or Channel.describe)(c), "plugin": self.channel_owners[n]}
                for n, c in sorted(channels.items())
            ],
            "journeys": journeys,
            "segments": segments,
            "failed": [asdict(f) for f in self.failed],
        }


def get_plugin_manager(*, strict: bool = True, load: str | None = None) -> PluginManager:
    """A plugin manager honouring `JOURNEYMAN_LOAD_PLUGINS` (unless `load` is given)."""
    if load is None:
        load = os.environ.get("JOURNEYMAN_LOAD_PLUGINS")
    return PluginManager(strict=strict, load=load)
