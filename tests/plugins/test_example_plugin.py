"""The example third-party plugin (examples/journeyman-pigeon) is an installed distribution
found only through its `journeyman` entry point; its contract tests live beside it in
examples/journeyman-pigeon/tests and run in the main test run."""

from __future__ import annotations

import importlib.metadata as md

from journeyman.plugins import PluginManager


def test_pigeon_is_found_through_its_entry_point() -> None:
    [entry_point] = [ep for ep in md.entry_points(group="journeyman") if ep.name == "pigeon"]
    assert entry_point.value == "journeyman_pigeon"
    assert entry_point.dist is not None and entry_point.dist.name == "journeyman-pigeon"
    pm = PluginManager(load="pigeon")
    [plugin] = pm.loaded
    assert (plugin.distribution, plugin.version) == ("journeyman-pigeon", "0.1.0")
    channel = pm.channels()["pigeon"]
    assert type(channel).__module__ == "journeyman_pigeon.channel"
    assert pm.loaded[0].channels == ["pigeon"]


def test_pigeon_is_configured_from_settings() -> None:
    pm = PluginManager(load="pigeon")
    channel = pm.channels({"pigeon": {"loft_url": "http://loft.test", "api_key": "k"}})["pigeon"]
    assert channel.configured
    assert not PluginManager(load="pigeon").channels()["pigeon"].configured


def test_the_example_ships_contract_tests() -> None:
    from pathlib import Path

    tests = Path(__file__).resolve().parents[2] / "examples/journeyman-pigeon/tests"
    source = (tests / "test_pigeon_contract.py").read_text()
    assert "class TestPigeonContract(ChannelContract)" in source
