"""Checks of the names a journey uses, before any member meets them.

A typo in an event type (`on_event("product.veiwed")`, `Exit("order.placd")`,
`wait_for("cart.update")`) or a channel (`send("emial", ...)`) is valid Python and a valid
journey: it only never matches, and the journey quietly starts for nobody, exits never, or
waits out every timeout. So is a `wait_for` on a type the journey does not listen to: the
dispatcher routes a journey only the types it declares (trigger, exits, goal, `listens=`),
so the wait always times out. These checks find both, with the closest known name:
`journeyman journeys` reports them and exits non-zero, and the worker refuses to start.

Known event types are the ones Journeyman documents and appends itself, the ones the
Segment-compatible endpoints map to, the configured activity types, those a plugin declares
(`register_event_types`), and `JOURNEYMAN_CUSTOM_EVENT_TYPES` (the opt-out for a shop's own
types). Known channels are the registered ones.

The names in a journey's body are read from the source of `steps()` (literal arguments of
`self.wait_for(...)` and `self.send(...)`); a name computed at run time is not checked.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import textwrap
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from journeyman.engine.ingest.models import RESERVED_TYPES
from journeyman.workflows.spec import ANY_ACTIVITY, DEFAULT_ACTIVITY_TYPES

# What the engine appends, and what docs/ingestion.md documents for clients.
DOCUMENTED_EVENT_TYPES = (
    frozenset(
        {
            # members
            "member.registered",
            "member.identified",
            "member.updated",
            "member.grouped",
            "member.unsubscribed",
            "member.consent_changed",
            "member.consent_requested",
            "member.contact_removed",
            # shop activity
            "page.viewed",
            "screen.viewed",
            "app.opened",
            "app.installed",
            "product.viewed",
            "cart.updated",
            "cart.viewed",
            "checkout.started",
            "order.placed",
            "order.refunded",
            # messages and their feedback
            "message.sent",
            "message.delivered",
            "message.opened",
            "message.clicked",
            "message.bounced",
            "message.complained",
            "message.failed",
            "message.deferred",
            "message.suppressed",
            "message.in_doubt",
            "message.provider_status",
        }
    )
    | RESERVED_TYPES
)  # the engine's own record: journeys, segments, merges and erasures


def known_event_types(
    *,
    activity_types: Iterable[str] = DEFAULT_ACTIVITY_TYPES,
    declared: Iterable[str] = (),
    custom: Iterable[str] = (),
) -> frozenset[str]:
    """Every event type a journey may name: documented, Segment-mapped, configured activity
    types, plugin-declared and custom."""
    from journeyman.engine.ingest.segment_events import mapped_event_types

    return (
        DOCUMENTED_EVENT_TYPES
        | mapped_event_types()
        | frozenset(activity_types)
        | frozenset(declared)
        | frozenset(custom)
    )


@dataclass(frozen=True)
class Problem:
    journey: str
    where: str
    """What names it: `trigger`, `exit`, `goal`, `listens`, `wait_for`, `send`, `channels`."""
    name: str
    message: str

    def __str__(self) -> str:
        return f"journey {self.journey!r}: {self.where} {self.name!r}: {self.message}"


class JourneyCheckError(Exception):
    """A registered journey names an unknown event type or channel, or waits for a type it
    does not listen to."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{len(problems)} problem(s) in the registered journeys:\n{lines}\n"
            "Correct the names, add a journey's waited-for types to its `listens=`, declare "
            "a shop's own event types with JOURNEYMAN_CUSTOM_EVENT_TYPES or a plugin's "
            "register_event_types hook."
        )


@dataclass(frozen=True)
class SendSite:
    """One `self.send(channels, template)` call: each argument as written, a literal value
    (`"email"`, `["sms", "email"]`), a field of the journey's settings (`s.coupon_channels`:
    `"coupon_channels"`), None for the settings' channels, or `...` when computed."""

    channels: tuple[str, ...] | str | type[Ellipsis] | None
    template: str | type[Ellipsis]
    line: int
    template_field: bool = False
    channels_field: bool = False


@dataclass(frozen=True)
class BodyNames:
    """Literal names in a journey's `steps()`: (name, line) pairs."""

    waits: tuple[tuple[str, int], ...] = ()
    channels: tuple[tuple[str, int], ...] = ()
    sends: tuple[SendSite, ...] = ()


@functools.cache
def body_names(cls: type) -> BodyNames:
    """The literal event types of `self.wait_for(...)` and channels of `self.send(...)` in
    `cls.steps` (and in the other methods of `cls` it may call). Empty when the source
    cannot be read."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        first = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return BodyNames()
    waits: list[tuple[str, int]] = []
    channels: list[tuple[str, int]] = []
    sends: list[SendSite] = []
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            continue
        line = first + node.lineno - 1
        if node.func.attr == "wait_for":
            waits += [(s, line) for s in _strings(node.args)]
        elif node.func.attr == "send":
            args = {k.arg: k.value for k in node.keywords if k.arg}
            ch = node.args[0] if node.args else args.get("channels")
            tpl = node.args[1] if len(node.args) > 1 else args.get("template")
            if ch is not None:
                channels += [(s, line) for s in _strings([ch])]
            sends.append(_site(ch, tpl, line))
    return BodyNames(tuple(waits), tuple(channels), tuple(sends))


def _site(ch: ast.expr | None, tpl: ast.expr | None, line: int) -> SendSite:
    channels: tuple[str, ...] | str | type[Ellipsis] | None = ...
    channels_field = False
    if ch is None or (isinstance(ch, ast.Constant) and ch.value is None):
        channels = None
    elif isinstance(ch, ast.Constant | ast.List | ast.Tuple):
        channels = tuple(_strings([ch]))
    elif isinstance(ch, ast.Attribute):
        channels, channels_field = ch.attr, True
    template: str | type[Ellipsis] = ...
    template_field = False
    if isinstance(tpl, ast.Constant) and isinstance(tpl.value, str):
        template = tpl.value
    elif isinstance(tpl, ast.Attribute):
        template, template_field = tpl.attr, True
    return SendSite(channels, template, line, template_field, channels_field)


def _strings(nodes: Iterable[ast.expr]) -> list[str]:
    out: list[str] = []
    for n in nodes:
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.List | ast.Tuple):
            out += _strings(n.elts)
    return out


def _unknown(name: str, known: Collection[str], kind: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known {kind}s: {', '.join(sorted(known))}"
    return f"no such {kind}; {hint}"


def check_journey(
    cls: type,
    *,
    event_types: Collection[str],
    channels: Collection[str],
    activity_types: Iterable[str] = DEFAULT_ACTIVITY_TYPES,
    settings: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Every problem with the names `cls` (a `@journey` class) uses."""
    spec = cls.__journey__  # type: ignore[attr-defined]
    acts = list(activity_types)
    problems: list[Problem] = []

    def event(where: str, name: str) -> None:
        if name != ANY_ACTIVITY and name not in event_types:
            problems.append(
                Problem(spec.name, where, name, _unknown(name, event_types, "event type"))
            )

    def channel(where: str, name: str, line: int | None = None) -> None:
        if name not in channels:
            at = f" (line {line})" if line else ""
            problems.append(
                Problem(spec.name, where, name, _unknown(name, channels, "channel") + at)
            )

    if spec.trigger.kind == "event" and spec.trigger.event_type:
        event("trigger", spec.trigger.event_type)
    for e in spec.exits:
        event("exit", e.event_type)
    if spec.goal is not None:
        event("goal", spec.goal.event_type)
    for name in spec.listens:
        event("listens", name)
    received = spec.event_types(acts)
    body = body_names(cls)
    for name, line in body.waits:
        if name not in event_types:
            problems.append(
                Problem(
                    spec.name,
                    "wait_for",
                    name,
                    f"{_unknown(name, event_types, 'event type')} (line {line})",
                )
            )
        elif name not in received:
            problems.append(
                Problem(
                    spec.name,
                    "wait_for",
                    name,
                    f"the journey waits for it (line {line}) but never receives it: the "
                    "dispatcher routes a journey only its trigger, exits, goal and `listens=` "
                    f"types; add listens=({name!r},)",
                )
            )
    for name, line in body.channels:
        channel("send", name, line)
    resolved = spec.resolve_settings(settings, activity_types=acts)
    for name in getattr(resolved, "channels", None) or ():
        channel("channels", name)
    return problems


def _resolve(site: SendSite, settings: Any) -> tuple[str | None, list[str]]:
    """The template and channels a send site uses under `settings` (None when computed)."""
    fields = type(settings).model_fields
    template: str | None = None
    if site.template is not ...:
        if not site.template_field:
            template = site.template  # type: ignore[assignment]
        elif site.template in fields:
            value = getattr(settings, site.template)  # type: ignore[arg-type]
            template = value if isinstance(value, str) else None
    if site.channels is None:
        channels = list(settings.channels)
    elif site.channels is ... or (site.channels_field and site.channels not in fields):
        # Computed: any channel list of the settings may be the one.
        channels = sorted(
            {
                c
                for f in fields
                if f == "channels" or f.endswith("_channels")
                for c in getattr(settings, f)
            }
        )
    elif site.channels_field:
        channels = list(getattr(settings, site.channels))  # type: ignore[arg-type]
    else:
        channels = list(site.channels)  # type: ignore[arg-type]
    return template, channels


def check_templates(
    cls: type,
    *,
    has: Callable[[str, str, str], bool],
    kinds: Mapping[str, str],
    settings: Mapping[str, Any] | None = None,
    activity_types: Iterable[str] = DEFAULT_ACTIVITY_TYPES,
) -> list[Problem]:
    """Every template `cls` can send, checked to exist for every channel it may go to:
    `has(template, kind, channel)` answers for a kind of channel (`email`, `sms`, `push`) or
    the channel's own parts, `kinds` gives each channel's kind."""
    spec = cls.__journey__  # type: ignore[attr-defined]
    resolved = spec.resolve_settings(settings, activity_types=list(activity_types))
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for site in body_names(cls).sends:
        template, channels = _resolve(site, resolved)
        if template is None:
            continue
        for channel in channels:
            kind = kinds.get(channel)
            if kind is None or (template, channel) in seen:
                continue  # an unknown channel is reported by the name checks
            seen.add((template, channel))
            if not has(template, kind, channel):
                problems.append(
                    Problem(
                        spec.name,
                        "template",
                        template,
                        f"has no {kind} version, and the journey may send it on channel "
                        f"{channel!r} (line {site.line}); add {template}/{kind}.<part>.j2 (or "
                        f"{channel}.<part>.j2) to "
                        "the templates directory or ship it with a register_templates hook",
                    )
                )
    return problems


def check_journeys(
    journeys: Mapping[str, type],
    *,
    event_types: Collection[str],
    channels: Collection[str],
    activity_types: Iterable[str] = DEFAULT_ACTIVITY_TYPES,
    journey_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Problem]:
    acts = list(activity_types)
    out: list[Problem] = []
    for name, cls in journeys.items():
        out += check_journey(
            cls,
            event_types=event_types,
            channels=channels,
            activity_types=acts,
            settings=(journey_settings or {}).get(name),
        )
    return out


def check_registered(pm: Any, settings: Any, journeys: Mapping[str, type]) -> list[Problem]:
    """The checks against what this installation knows: the plugin manager `pm`'s
    channels, declared event types and shipped templates, and `settings` (its templates
    directory among them)."""
    from journeyman.engine.delivery.templates import kind_for, templates_for

    types = known_event_types(
        activity_types=settings.activity_types,
        declared=pm.event_types(),
        custom=settings.custom_event_types,
    )
    channels = pm.channels()
    problems = check_journeys(
        journeys,
        event_types=types,
        channels=set(channels),
        activity_types=settings.activity_types,
        journey_settings=settings.journeys,
    )
    templates = templates_for(settings, pm.templates())
    kinds = {name: kind_for(c.contact) for name, c in channels.items()}
    for name, cls in journeys.items():
        problems += check_templates(
            cls,
            has=templates.has,
            kinds=kinds,
            settings=settings.journeys.get(name),
            activity_types=settings.activity_types,
        )
    return problems
