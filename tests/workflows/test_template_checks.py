"""Every template a registered journey can send exists for every channel it may use, or the
worker does not start: the error names the template, the kind of channel and the line."""

from __future__ import annotations

import datetime as dt

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.templates import templates_for
from journeyman.engine.runtime.journey_checks import (
    JourneyCheckError,
    check_registered,
    check_templates,
)
from journeyman.engine.runtime.worker import run_worker
from journeyman.plugins import PluginManager, hookimpl
from journeyman.workflows import Journey, JourneySettings, hours, journey, on_event
from journeyman.workflows.cart_recovery import CartRecovery
from pydantic import Field, SecretStr

KINDS = {"email": "email", "sms": "sms", "push": "push"}
EMAIL_ONLY = {"quiz_thanks": {"email.subject": "Thanks", "email.text": "Thanks!"}}


class QuizSettings(JourneySettings):
    thanks_template: str = "quiz_thanks"
    later_channels: list[str] = Field(default_factory=lambda: ["sms"])
    wait: dt.timedelta = hours(1)


@journey("quiz_thanks", trigger=on_event("order.placed"), settings=QuizSettings)
class QuizThanks(Journey):
    settings: QuizSettings

    async def steps(self) -> None:
        s = self.settings
        await self.send("email", s.thanks_template, step="now")
        await self.sleep(s.wait)
        await self.send(s.later_channels, s.thanks_template, step="later")
        await self.send(None, "quiz_unknown", step="other")


def _has(shipped: dict) -> object:  # type: ignore[type-arg]
    return lambda name, kind, channel: any(k.startswith(f"{kind}.") for k in shipped.get(name, {}))


def test_missing_kinds_and_templates_are_reported_with_their_lines() -> None:
    problems = check_templates(QuizThanks, has=_has(EMAIL_ONLY), kinds=KINDS)  # type: ignore[arg-type]
    found = {(p.name, p.message.split(",")[0]) for p in problems}
    assert found == {
        ("quiz_thanks", "has no sms version"),
        ("quiz_unknown", "has no email version"),
    }
    sms = next(p for p in problems if "sms" in p.message)
    assert "channel 'sms'" in sms.message and "(line " in sms.message


def test_the_built_in_journeys_have_every_template_they_send(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(secret_key=SecretStr("tpl-" + "k" * 40), data_dir=tmp_path)
    pm = PluginManager(load="builtin_channels,builtin_journeys")
    assert check_registered(pm, settings, pm.journeys()) == []
    # A templates directory that lacks nothing changes nothing; the built-ins stay behind it.
    assert templates_for(settings, {}).has("cart_coupon", "sms")
    assert check_templates(CartRecovery, has=lambda n, k, c: k == "email", kinds=KINDS) != []


class _Quiz:
    def __init__(self, ship: bool) -> None:
        self.ship = ship

    @hookimpl
    def register_journeys(self, register):  # type: ignore[no-untyped-def]
        register(QuizThanks)

    @hookimpl
    def register_templates(self, register):  # type: ignore[no-untyped-def]
        if self.ship:
            register("quiz_thanks", {**EMAIL_ONLY["quiz_thanks"], "sms.text": "Thanks!"})
            register("quiz_unknown", {"email.subject": "Hi", "email.text": "Hi"})


async def test_a_missing_template_stops_the_worker_with_its_name(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def manager(ship: bool) -> PluginManager:
        pm = PluginManager(load="builtin_channels")
        pm.register(_Quiz(ship), name="quiz")
        return pm

    settings = Settings(secret_key=SecretStr("tpl-" + "k" * 40), data_dir=tmp_path)
    monkeypatch.setattr("journeyman.engine.runtime.worker.plugin_manager", lambda: manager(False))
    with pytest.raises(JourneyCheckError) as caught:
        await run_worker(settings, "postgresql://nobody@127.0.0.1:1/none")
    assert "template 'quiz_unknown': has no email version" in str(caught.value)
    assert "template 'quiz_thanks': has no sms version" in str(caught.value)

    shipped = manager(True)
    assert check_registered(shipped, settings, shipped.journeys()) == []
