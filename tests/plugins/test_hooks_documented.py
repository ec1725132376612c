"""Every hook is documented in docs/plugins.md under a heading that is its exact signature,
and every hook has a test named `test_hook_<hook>` (as datasette does)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from journeyman.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "plugins.md").read_text()
HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "journeyman_spec")
)


def test_there_are_hooks() -> None:
    assert HOOKS == [
        "register_channels",
        "register_event_types",
        "register_journeys",
        "register_segments",
        "register_templates",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_signature(hook: str) -> None:
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    heading = f"### {hook}({params})"
    assert re.search(rf"^{re.escape(heading)}$", DOCS, re.MULTILINE), f"missing: {heading}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    assert re.search(rf"^(async )?def test_hook_{hook}\b", sources, re.MULTILINE)
