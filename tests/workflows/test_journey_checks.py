"""Journey names are checked before members meet them: typos in event types and channels,
and a `wait_for` on a type the journey does not receive, stop `journeyman journeys` and the
worker with the closest known name."""

from __future__ import annotations

import pytest
from journeyman.engine.cli import app
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.runtime.journey_checks import (
    JourneyCheckError,
    body_names,
    check_journey,
    known_event_types,
)
from journeyman.engine.runtime.worker import run_worker
from journeyman.plugins import PluginManager, hookimpl
from journeyman.workflows import Exit, Goal, Journey, days, hours, journey, on_event
from journeyman.workflows.cart_recovery import CartRecovery
from pydantic import SecretStr
from typer.testing import CliRunner

WORKER_PM = "journeyman.engine.runtime.worker.plugin_manager"

CHANNELS = {"email", "sms", "push"}
TYPES = known_event_types()


@journey(
    "typos",
    trigger=on_event("product.veiwed", key="product_id"),
    exits=[Exit("order.placd")],
    goal=Goal("order.placed", within=days(2)),
)
class Typos(Journey):
    async def steps(self) -> None:
        await self.wait_for("cart.update", timeout=hours(1))
        await self.send("emial", "nudge")


@journey("unlistened", trigger=on_event("product.viewed"), exits=[Exit("order.placed")])
class Unlistened(Journey):
    async def steps(self) -> None:
        if await self.wait_for("cart.updated", timeout=hours(2)):
            return
        await self.send(["email"], "browse_nudge")


@journey(
    "listened",
    trigger=on_event("product.viewed"),
    exits=[Exit("order.placed")],
    listens=("cart.updated", "quiz.completed"),
)
class Listened(Journey):
    async def steps(self) -> None:
        if await self.wait_for("cart.updated", "quiz.completed", timeout=hours(2)):
            return
        await self.send(("email", "sms"), "cart_reminder")


def _problems(cls: type, types: frozenset[str] = TYPES) -> dict[tuple[str, str], str]:
    found = check_journey(cls, event_types=types, channels=CHANNELS)
    return {(p.where, p.name): p.message for p in found}


def test_every_typo_is_found_with_the_closest_known_name() -> None:
    problems = _problems(Typos)
    assert set(problems) == {
        ("trigger", "product.veiwed"),
        ("exit", "order.placd"),
        ("wait_for", "cart.update"),
        ("send", "emial"),
    }
    assert "did you mean 'product.viewed'?" in problems[("trigger", "product.veiwed")]
    assert "did you mean 'order.placed'?" in problems[("exit", "order.placd")]
    assert "did you mean 'cart.updated'?" in problems[("wait_for", "cart.update")]
    assert "did you mean 'email'?" in problems[("send", "emial")]


def test_a_wait_for_the_journey_never_receives_is_a_problem() -> None:
    problems = _problems(Unlistened)
    assert list(problems) == [("wait_for", "cart.updated")]
    message = problems[("wait_for", "cart.updated")]
    assert "never receives it" in message and "listens=('cart.updated',)" in message


def test_custom_types_and_listens_make_a_journey_clean() -> None:
    assert ("wait_for", "quiz.completed") in _problems(Listened)
    custom = known_event_types(custom=["quiz.completed"])
    assert _problems(Listened, custom) == {}
    assert _problems(CartRecovery) == {}


def test_body_names_reads_literal_waits_and_channels_with_lines() -> None:
    names = body_names(Listened)
    assert [n for n, _ in names.waits] == ["cart.updated", "quiz.completed"]
    assert [n for n, _ in names.channels] == ["email", "sms"]
    assert all(line > 0 for _, line in names.waits)


class _Plugin:
    def __init__(self, *journeys: type) -> None:
        self.journeys = journeys

    @hookimpl
    def register_journeys(self, register):  # type: ignore[no-untyped-def]
        for cls in self.journeys:
            register(cls)


def _manager(*journeys: type) -> PluginManager:
    pm = PluginManager(load="builtin_channels")
    pm.register(_Plugin(*journeys), name="authored")
    return pm


def test_journeys_command_exits_non_zero_naming_the_closest_name(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("JOURNEYMAN_SECRET_KEY", "checks-" + "k" * 40)
    get_settings.cache_clear()  # the command reads the environment set here
    monkeypatch.setattr(WORKER_PM, lambda: _manager(Typos))
    result = CliRunner().invoke(app, ["journeys"])
    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())
    assert "journey 'typos': trigger 'product.veiwed'" in flat
    assert "did you mean 'product.viewed'?" in flat

    monkeypatch.setattr(WORKER_PM, lambda: _manager(Listened))
    monkeypatch.setenv("JOURNEYMAN_CUSTOM_EVENT_TYPES", '["quiz.completed"]')
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["journeys"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output


async def test_the_worker_refuses_to_start_before_connecting(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(WORKER_PM, lambda: _manager(Unlistened))
    settings = Settings(secret_key=SecretStr("checks-" + "k" * 40), data_dir=tmp_path)
    # No database and no Temporal at this address: the check must fail first.
    with pytest.raises(JourneyCheckError) as caught:
        await run_worker(settings, "postgresql://nobody@127.0.0.1:1/none")
    assert "journey 'unlistened': wait_for 'cart.updated'" in str(caught.value)
    assert "listens=('cart.updated',)" in str(caught.value)
