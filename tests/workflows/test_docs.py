"""docs/journeys.md: every code block that starts with `# <file>.py` is written out as that
module and imported; the test module it contains is run."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from journeyman.engine.delivery.templates import Templates
from journeyman.engine.runtime.journey_checks import (
    check_journey,
    check_templates,
    known_event_types,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "journeys.md"
CHANNELS = {"email", "sms", "push"}
BLOCK = re.compile(r"```python\n# (\w+)\.py\n(.*?)```", re.S)


def blocks() -> dict[str, str]:
    return {name: body for name, body in BLOCK.findall(DOC.read_text())}


async def test_journeys_doc_examples_run(tmp_path: Path) -> None:
    found = blocks()
    assert {"my_journeys", "my_plugin", "test_my_journeys", "my_journeys_v2"} <= set(found)
    for name, body in found.items():
        (tmp_path / f"{name}.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    try:
        modules = {name: importlib.import_module(name) for name in found}
        spec = modules["my_journeys"].BrowseAbandonment.__journey__
        assert spec.name == "browse_abandonment"
        assert modules["my_journeys_v2"].BrowseAbandonmentV2.__journey__.name == spec.name
        registered: list[type] = []
        modules["my_plugin"].register_journeys(registered.append)
        assert registered == [modules["my_journeys"].BrowseAbandonment]
        # The journeys the page teaches pass the checks `journeyman journeys` and the
        # worker apply (the first example once waited for a type it never received).
        for cls in (registered[0], modules["my_journeys_v2"].BrowseAbandonmentV2):
            assert check_journey(cls, event_types=known_event_types(), channels=CHANNELS) == []
        shipped: dict[str, dict[str, str]] = {}
        modules["my_plugin"].register_templates(lambda name, parts: shipped.update({name: parts}))
        templates = Templates(builtin=shipped)
        assert check_templates(registered[0], has=templates.has, kinds={"email": "email"}) == []
        assert "Unsubscribe" in templates.render("browse_nudge", "email", {}).html
        tests = modules["test_my_journeys"]
        await tests.test_view_without_order_gets_one_nudge()
        await tests.test_a_cart_within_two_hours_means_no_nudge()
        # The page's examples import only the public surface.
        for name, body in found.items():
            private = re.findall(r"^from (journeyman\.engine\S*)", body, re.M)
            assert private == [], f"{name} imports {private}"
    finally:
        sys.path.remove(str(tmp_path))
        for name in found:
            sys.modules.pop(name, None)
