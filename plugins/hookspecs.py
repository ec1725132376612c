"""The hooks a Journeyman plugin can implement.

Every hook takes a `register` callback, as in `llm`: the plugin calls it once per thing it
provides. Built-in channels and journeys use exactly these hooks, through the same
entry-point group (`journeyman`) as third-party packages. Each hook is documented, with its
signature as the heading, in docs/plugins.md; a test keeps the two in step.
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
    """Register channel instances: call `register(channel)` once for each.

    A channel is an instance of a `journeyman.channels.Channel` subclass, constructed without
    arguments
    (the engine configures it from settings). Two plugins registering the same channel name
    is an error that names both.
    """


@hookspec
def register_journeys(register: Callable[[type], None]) -> None:
    """Register journey classes (decorated with `@journey`): call `register(cls)` for each."""


@hookspec
def register_segments(register: Callable[[Any], None]) -> None:
    """Register segments: call `register(segment)` once for each.

    A segment is a `journeyman.workflows.Segment`: a name and a test of the member profile.
    Two plugins registering the same segment name is an error that names both.
    """


@hookspec
def register_event_types(register: Callable[[str], None]) -> None:
    """Declare event types: call `register("quiz.completed")` once for each type the plugin's
    events, journeys or channels use beyond Journeyman's own.

    Journeys are checked against the known types (`journeyman journeys`, worker start): a
    name nobody declares is reported with the closest known one.
    """


@hookspec
def register_templates(register: Callable[[str, Any], None]) -> None:
    """Ship message templates: call `register(name, parts)` once for each, `parts` mapping
    `<kind>.<part>` (and `<kind>.<part>.<locale>`) to Jinja2 source, e.g.
    `{"email.subject": "...", "email.html": "...", "sms.text": "..."}`.

    A templates directory (`JOURNEYMAN_DELIVERY__TEMPLATES_DIR`) overrides them; they override
    the built-in templates. Two plugins registering the same name is an error naming both.
    """
