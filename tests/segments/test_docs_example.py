"""docs/journeys.md, "Segments": the example module runs, registers its segment through the
hook, and its journey passes the plugin manager's check of segment triggers."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from journeyman.engine.contracts.profile import MemberProfile
from journeyman.plugins import PluginManager

DOC = Path(__file__).resolve().parents[2] / "docs" / "journeys.md"


def test_the_segments_example_runs(tmp_path: Path) -> None:
    [body] = re.findall(r"```python\n# my_segments\.py\n(.*?)```", DOC.read_text(), re.S)
    (tmp_path / "my_segments.py").write_text(body)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("my_segments")
        pm = PluginManager(load="")
        pm.register(module, name="my-segments")
        [segment] = pm.segments().values()
        assert segment.name == "big_spenders"
        assert segment.matches(MemberProfile(member_id="m", monetary_value=1200))
        assert not segment.matches(MemberProfile(member_id="m", monetary_value=999))
        spec = module.BigSpenderThanks.__journey__
        assert spec.trigger.segment == "big_spenders"
        assert spec.starts_on("segment.entered", {"segment": "big_spenders"}, [])
        assert spec.exit_rule("segment.exited", {"segment": "big_spenders"}, []) is not None
        assert spec.exit_rule("segment.exited", {"segment": "vip"}, []) is None
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_segments", None)
