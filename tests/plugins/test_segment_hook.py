"""The `register_segments` hook, and journeys that start on entry into a segment."""

from __future__ import annotations

import pytest
from journeyman.engine.segments import Segment, SegmentError
from journeyman.plugins import PluginError, PluginManager, hookimpl
from journeyman.workflows import Journey, journey, segment_entry

GOLD = Segment("gold", when=lambda p: p.monetary_value >= 1000, description="1000+ spent")


@journey("gold_welcome_test", trigger=segment_entry("gold"))
class GoldWelcome(Journey):
    async def steps(self) -> None:
        pass


class GoldPlugin:
    @hookimpl
    def register_segments(self, register):
        register(GOLD)


class GoldJourneyPlugin:
    @hookimpl
    def register_journeys(self, register):
        register(GoldWelcome)


def test_hook_register_segments() -> None:
    pm = PluginManager(load="")
    pm.register(GoldPlugin(), name="tiers")
    assert pm.segments() == {"gold": GOLD}
    assert pm.segment_owners == {"gold": "tiers"}
    assert pm.loaded[0].segments == ["gold"] and pm.loaded[0].hooks == ["register_segments"]

    class Duplicate:
        @hookimpl
        def register_segments(self, register):
            register(Segment("gold", when=lambda p: True))

    pm.register(Duplicate(), name="other-tiers")
    with pytest.raises(PluginError, match="'gold' is registered by both plugin 'tiers' and"):
        pm.segments()


def test_registering_something_that_is_not_a_segment() -> None:
    class Wrong:
        @hookimpl
        def register_segments(self, register):
            register(lambda p: True)

    pm = PluginManager(load="")
    pm.register(Wrong(), name="wrong")
    with pytest.raises(
        PluginError, match=r"'wrong' registered .* not a journeyman.workflows.Segment"
    ):
        pm.segments()


def test_a_segment_is_declared_with_a_valid_name_and_a_callable() -> None:
    with pytest.raises(SegmentError, match="'VIP Customers' is not valid"):
        Segment("VIP Customers", when=lambda p: True)
    with pytest.raises(SegmentError, match="'vip': `when` must be a callable"):
        Segment("vip", when=True)  # type: ignore[arg-type]


def test_a_journey_on_a_segment_nobody_registers_is_an_error() -> None:
    pm = PluginManager(load="")
    pm.register(GoldJourneyPlugin(), name="gold-journeys")
    for strict in (True, False):
        pm.strict = strict
        with pytest.raises(PluginError) as info:
            pm.journeys()
        message = str(info.value)
        assert "journey 'gold_welcome_test' (plugin 'gold-journeys')" in message
        assert "segment 'gold', which no loaded plugin registers" in message
    pm.register(GoldPlugin(), name="tiers")
    assert pm.journeys() == {"gold_welcome_test": GoldWelcome}


def test_the_builtin_segments_load_with_the_builtin_journeys() -> None:
    pm = PluginManager(load="builtin_journeys")
    assert set(pm.segments()) == {"vip", "lapsed_vip"}
    assert set(pm.segment_owners.values()) == {"builtin_journeys"}
    report = pm.report()
    assert [s["name"] for s in report["segments"]] == ["lapsed_vip", "vip"]
    assert all(s["description"] and s["plugin"] == "builtin_journeys" for s in report["segments"])
