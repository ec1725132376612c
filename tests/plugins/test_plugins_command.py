"""`journeyman plugins`, as a user runs it."""

from __future__ import annotations

import json

import pytest
from journeyman.engine.cli import app
from journeyman.engine.core.settings import get_settings
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_json_lists_plugins_versions_hooks_and_channels(monkeypatch) -> None:
    monkeypatch.setenv("JOURNEYMAN_LOAD_PLUGINS", "builtin_channels,pigeon")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__SMS__ACCOUNT_SID", "AC123")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__SMS__AUTH_TOKEN", "twilio-token-do-not-show")
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__SMS__FROM_NUMBER", "+15005550006")
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    plugins = {p["name"]: p for p in report["plugins"]}
    assert plugins["pigeon"]["distribution"] == "journeyman-pigeon"
    assert plugins["pigeon"]["version"] == "0.1.0"
    assert plugins["pigeon"]["hooks"] == ["register_channels"]
    assert plugins["builtin_channels"]["channels"] == sorted(
        ["email", "fcm", "outbox", "sms", "webhook", "webpush"]
    )
    channels = {c["name"]: c for c in report["channels"]}
    assert channels["pigeon"]["plugin"] == "pigeon"
    assert channels["sms"]["configured"] is True
    assert channels["email"]["configured"] is False
    assert "JOURNEYMAN_CHANNELS__EMAIL__HOST" in channels["email"]["not_configured_reason"]
    assert "twilio-token-do-not-show" not in result.output


def test_table_output_and_failures(monkeypatch, install_plugin) -> None:
    install_plugin(
        "broken-plugin",
        {"broken": "broken_cli_mod"},
        {"broken_cli_mod": "raise ImportError('missing SDK')\n"},
    )
    monkeypatch.setenv("JOURNEYMAN_LOAD_PLUGINS", "builtin_channels,broken")
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 1
    assert "builtin_ch" in result.output and "outbox" in result.output
    assert "broken" in result.output and "missing SDK" in result.output
    strict = CliRunner().invoke(app, ["plugins", "--strict"])
    assert strict.exit_code == 1


def test_journeys_command_says_how_each_journey_starts() -> None:
    result = CliRunner().invoke(app, ["journeys"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "CartRecovery) trigger: cart.updated (one run per cart_id);" in text
    assert "Winback) trigger: inactivity 30 days;" in text
    assert "Welcome) trigger: member.registered;" in text


def test_a_segment_trigger_is_named() -> None:
    from journeyman.engine.cli.journey_commands import _describe_trigger
    from journeyman.workflows import segment_entry

    assert _describe_trigger(segment_entry("vip"), None) == "entry into segment vip"


def test_plugins_table_lists_segments() -> None:
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "register_segments" in text and "segment vip" in text
