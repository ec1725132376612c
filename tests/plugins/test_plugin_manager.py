"""The plugin manager: entry-point discovery, JOURNEYMAN_LOAD_PLUGINS, strictness, and the
two registration hooks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from journeyman.channels import Channel, ContactKind, DeliveryResult, Message
from journeyman.plugins import PluginError, PluginManager, get_plugin_manager, hookimpl

BUILTIN_CHANNELS = {"email", "sms", "webpush", "fcm", "webhook", "outbox"}

CHANNEL_PLUGIN = """
    from journeyman.plugins import hookimpl
    from journeyman.channels import Channel, ContactKind, DeliveryResult

    class Carrier(Channel):
        name = "{name}"
        contact = ContactKind.MEMBER

        async def send(self, message, idempotency_key):
            return DeliveryResult(channel=self.name, provider_message_id=idempotency_key)

    @hookimpl
    def register_channels(register):
        register(Carrier())
"""


def test_builtins_load_through_their_entry_points() -> None:
    pm = PluginManager(load="builtin_channels")
    [plugin] = pm.loaded
    assert (plugin.name, plugin.module, plugin.distribution) == (
        "builtin_channels",
        "journeyman.plugins.builtin_channels",
        "journeyman",
    )
    assert set(pm.channels()) == BUILTIN_CHANNELS
    assert set(pm.channel_owners.values()) == {"builtin_channels"}


def test_load_plugins_restricts_by_entry_point_or_distribution(monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_LOAD_PLUGINS", "journeyman-pigeon")
    assert [p.name for p in get_plugin_manager().loaded] == ["pigeon"]
    monkeypatch.setenv("JOURNEYMAN_LOAD_PLUGINS", "builtin_channels, pigeon")
    assert {p.name for p in get_plugin_manager().loaded} == {"builtin_channels", "pigeon"}
    monkeypatch.setenv("JOURNEYMAN_LOAD_PLUGINS", "")
    pm = get_plugin_manager()
    assert pm.loaded == [] and pm.channels() == {}


def test_duplicate_channel_names_both_plugins(install_plugin) -> None:
    install_plugin(
        "carrier-a",
        {"carrier_a": "carrier_a"},
        {"carrier_a": CHANNEL_PLUGIN.format(name="carrier")},
    )
    install_plugin(
        "carrier-b",
        {"carrier_b": "carrier_b"},
        {"carrier_b": CHANNEL_PLUGIN.format(name="carrier")},
    )
    pm = PluginManager(load="carrier-a,carrier-b")
    with pytest.raises(PluginError, match="'carrier' is registered by both plugin") as info:
        pm.channels()
    assert "'carrier_a'" in str(info.value) and "'carrier_b'" in str(info.value)


def test_a_plugin_that_fails_to_import_is_reported(install_plugin) -> None:
    install_plugin(
        "broken-plugin",
        {"broken": "broken_plugin_mod"},
        {"broken_plugin_mod": "import a_module_that_is_not_installed\n"},
    )
    with pytest.raises(PluginError, match=r"'broken'.*ModuleNotFoundError.*a_module_that_is_not"):
        PluginManager(load="broken-plugin")
    lenient = PluginManager(load="broken-plugin,builtin_channels", strict=False)
    [failure] = lenient.failed
    assert failure.name == "broken" and "a_module_that_is_not_installed" in failure.error
    assert set(lenient.channels()) == BUILTIN_CHANNELS


def test_a_hook_that_does_not_exist_is_an_error(install_plugin) -> None:
    install_plugin(
        "typo-plugin",
        {"typo": "typo_mod"},
        {
            "typo_mod": """
        from journeyman.plugins import hookimpl

        @hookimpl
        def register_channel(register):
            pass
    """
        },
    )
    with pytest.raises(PluginError, match=r"'typo'.*does not have.*register_channel"):
        PluginManager(load="typo-plugin")


def test_a_hook_that_raises_names_the_plugin() -> None:
    class Exploding:
        @hookimpl
        def register_channels(self, register):
            raise RuntimeError("no credentials file")

    pm = PluginManager(load="")
    pm.register(Exploding(), name="exploding")
    with pytest.raises(PluginError, match=r"'exploding' failed in register_channels.*credentials"):
        pm.channels()
    lenient = PluginManager(load="builtin_channels", strict=False)
    lenient.register(Exploding(), name="exploding")
    assert set(lenient.channels()) == BUILTIN_CHANNELS
    assert lenient.failed[0].name == "exploding"


def test_registering_something_that_is_not_a_channel() -> None:
    class Wrong:
        @hookimpl
        def register_channels(self, register):
            register(object())

    pm = PluginManager(load="")
    pm.register(Wrong(), name="wrong")
    with pytest.raises(
        PluginError, match=r"'wrong' registered .* not a journeyman.channels.Channel"
    ):
        pm.channels()


class Parrot(Channel):
    name = "parrot"
    contact = ContactKind.MEMBER

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        return DeliveryResult(channel=self.name, provider_message_id=idempotency_key)


async def test_hook_register_channels() -> None:
    class ParrotPlugin:
        @hookimpl
        def register_channels(self, register):
            register(Parrot())

    pm = PluginManager(load="")
    pm.register(ParrotPlugin(), name="parrots")
    channels = pm.channels({"parrot": {"rate_limit_per_second": 3}})
    assert channels["parrot"].rate_limit_per_second == 3
    result = await channels["parrot"].send(Message(to="m", text="hi"), "k1")
    assert result.provider_message_id == "k1"
    assert pm.loaded[0].channels == ["parrot"] and pm.loaded[0].hooks == ["register_channels"]


def test_hook_register_journeys() -> None:
    @dataclass
    class Spec:
        name: str

    class Welcome:
        __journey__ = Spec("welcome_test")

    class Again:
        __journey__ = Spec("welcome_test")

    class JourneyPlugin:
        @hookimpl
        def register_journeys(self, register):
            register(Welcome)

    pm = PluginManager(load="")
    pm.register(JourneyPlugin(), name="journeys-a")
    assert pm.journeys() == {"welcome_test": Welcome}
    assert pm.journey_owners == {"welcome_test": "journeys-a"}

    class Duplicate:
        @hookimpl
        def register_journeys(self, register):
            register(Again)

    pm.register(Duplicate(), name="journeys-b")
    with pytest.raises(PluginError, match="'journeys-a' and plugin 'journeys-b'"):
        pm.journeys()
