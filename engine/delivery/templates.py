"""Templates: sandboxed Jinja2, one set of parts per kind of channel, in the member's locale.

A template is a name (`cart_reminder`) with parts per kind of channel:

    email:  subject, html, text       (channels whose contact is an email address, the outbox)
    sms:    text                      (phone channels, and channels that only need the member)
    push:   title, body               (Web Push and FCM)

A channel may also have parts of its own, named after it (`pigeon.text`): they are used
before its kind's (a channel that only needs the member id gets its own text rather than the
SMS text with "Reply STOP to opt out"). Sources are looked up as
`<templates_dir>/<name>/<channel or kind>.<part>.<locale>.j2`, then the language alone (`fr`
for `fr-CA`), then `<channel or kind>.<part>.j2` (the default locale), and after the
directory, the templates plugins ship (`register_templates`) and the built-in journeys'
(`builtin_templates.py`).
Templates render in Jinja2's `SandboxedEnvironment`: they cannot reach Python internals.
HTML parts are autoescaped. Links in HTML are rewritten into signed click-tracking links
(except the unsubscribe link), an open pixel is added, and `track(url)` makes a tracking link
in text parts.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from journeyman.channels import ContactKind

from .builtin_templates import BUILTIN

PARTS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "html", "text"),
    "sms": ("text",),
    "push": ("title", "body"),
}
_KIND_BY_CONTACT = {
    ContactKind.EMAIL: "email",
    ContactKind.PHONE: "sms",
    ContactKind.WEB_PUSH: "push",
    ContactKind.FCM_TOKEN: "push",
    ContactKind.MEMBER: "sms",
    ContactKind.EXTERNAL: "sms",
    ContactKind.ANY: "email",
}
_HREF = re.compile(r"""href=(["'])(https?://[^"']+)\1""", re.IGNORECASE)


_MAX_OUTPUT = 1_000_000  # characters (or items) one `*` may build
_MAX_POWER = 64


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also bounding `*` and `**` so that a template cannot build a huge string
    or number (`{{ 'x' * 10**9 }}`): the sandbox alone guards attributes, not sizes."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        from jinja2.exceptions import SecurityError

        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_POWER:
            raise SecurityError(f"exponent {right} is larger than {_MAX_POWER}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int):
                    if len(seq) * n > _MAX_OUTPUT:
                        raise SecurityError(f"a result longer than {_MAX_OUTPUT} is not allowed")
        return super().call_binop(context, operator, left, right)


class TemplateMissing(LookupError):
    """No source for a template in the kind of channel asked for."""


class TemplateError(ValueError):
    """A template that does not compile or fails to render."""


def kind_for(contact: ContactKind | str) -> str:
    return _KIND_BY_CONTACT.get(ContactKind(contact), "sms")


def locale_chain(locale: str | None, default: str) -> list[str | None]:
    """`fr-CA` -> ["fr-ca", "fr", None]; None (the default files) always ends the chain."""
    out: list[str | None] = []
    if locale:
        tag = locale.replace("_", "-").lower()
        if tag != default.lower():
            out.append(tag)
            lang = tag.split("-", 1)[0]
            if lang != tag and lang != default.lower():
                out.append(lang)
    out.append(None)
    return out


class _Loader(BaseLoader):
    def __init__(self, directory: Path | None, builtin: Mapping[str, Mapping[str, str]]) -> None:
        self.directory = directory
        self.builtin = builtin

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        name, _, part = template.partition("/")
        if self.directory is not None:
            path = self.directory / name / f"{part}.j2"
            if path.is_file():
                mtime = path.stat().st_mtime
                return (
                    path.read_text(encoding="utf-8"),
                    str(path),
                    lambda: path.is_file() and path.stat().st_mtime == mtime,
                )
        source = self.builtin.get(name, {}).get(part)
        if source is None:
            raise TemplateNotFound(template)
        return source, None, lambda: True


@dataclass(frozen=True)
class Rendered:
    kind: str
    locale: str | None
    subject: str | None = None
    html: str | None = None
    text: str = ""
    title: str | None = None


class Templates:
    """Finds and renders templates. `directory` overrides the built-in templates."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        default_locale: str = "en",
        builtin: Mapping[str, Mapping[str, str]] = BUILTIN,
    ) -> None:
        self.default_locale = default_locale
        self.env = _Sandbox(
            loader=_Loader(directory, builtin),
            autoescape=lambda name: name is not None and ".html" in name,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )

    def _find(
        self, name: str, kind: str, part: str, locale: str | None, channel: str | None = None
    ) -> tuple[Any, str | None]:
        for prefix in (channel, kind) if channel and channel != kind else (kind,):
            for loc in locale_chain(locale, self.default_locale):
                key = f"{name}/{prefix}.{part}" + (f".{loc}" if loc else "")
                try:
                    return self.env.get_template(key), loc
                except TemplateNotFound:
                    continue
                except TemplateSyntaxError as exc:
                    raise TemplateError(f"template {key} does not compile: {exc}") from None
        return None, None

    def has(self, name: str, kind: str, channel: str | None = None) -> bool:
        """Whether `name` has something for `kind` (or for `channel`'s own parts)."""
        return any(self._find(name, kind, p, None, channel)[0] is not None for p in PARTS[kind])

    def render(
        self,
        name: str,
        kind: str,
        context: Mapping[str, Any],
        *,
        locale: str | None = None,
        track: Callable[[str], str] | None = None,
        open_pixel: str | None = None,
        keep: frozenset[str] = frozenset(),
        channel: str | None = None,
    ) -> Rendered:
        """Render every part of `name` for `kind` (`channel`'s own parts first, where the
        template has them); `TemplateMissing` when the template has nothing for that kind
        (or lacks a required part)."""
        ctx = dict(context)
        ctx.setdefault("track", track or (lambda url: url))
        out: dict[str, str] = {}
        used: str | None = None
        for part in PARTS[kind]:
            template, loc = self._find(name, kind, part, locale, channel)
            if template is None:
                continue
            used = used or loc
            try:
                out[part] = template.render(ctx).strip()
            except Exception as exc:  # a template error is the template's, not the member's
                raise TemplateError(
                    f"template {name}/{kind}.{part} failed: {type(exc).__name__}: {exc}"
                ) from None
        if kind == "email":
            if "subject" not in out or not ({"html", "text"} & set(out)):
                raise TemplateMissing(f"template {name!r} has no email subject and body")
            page = out.get("html")
            if page is not None:
                if track is not None:
                    page = _track_links(page, track, keep)
                if open_pixel is not None:
                    page = _add_pixel(page, open_pixel)
            return Rendered(kind, used, subject=out["subject"], html=page, text=out.get("text", ""))
        if kind == "push":
            if not out:
                raise TemplateMissing(f"template {name!r} has no push title or body")
            return Rendered(kind, used, title=out.get("title"), text=out.get("body", ""))
        if "text" not in out:
            raise TemplateMissing(f"template {name!r} has no {kind} text")
        return Rendered(kind, used, text=out["text"])


def _track_links(page: str, track: Callable[[str], str], keep: frozenset[str]) -> str:
    def swap(m: re.Match[str]) -> str:
        url = html_lib.unescape(m.group(2))
        if url in keep:
            return m.group(0)
        return f"href={m.group(1)}{html_lib.escape(track(url))}{m.group(1)}"

    return _HREF.sub(swap, page)


def _add_pixel(page: str, url: str) -> str:
    img = (
        f'<img src="{html_lib.escape(url)}" width="1" height="1" alt="" '
        'style="display:none;border:0">'
    )
    at = page.lower().rfind("</body>")
    return page + img if at < 0 else page[:at] + img + page[at:]


def templates_for(settings: Any, shipped: Mapping[str, Mapping[str, str]]) -> Templates:
    """The templates a deliverer uses: the configured directory first, then the templates
    plugins ship (`register_templates`), then the built-in ones."""
    return Templates(
        settings.delivery.templates_dir,
        default_locale=settings.delivery.default_locale,
        builtin={**BUILTIN, **shipped},
    )
