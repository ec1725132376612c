"""The `register_event_types` and `register_templates` hooks: a plugin's own event types
become known to the journey checks, and its templates to the template checks."""

from __future__ import annotations

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.runtime.journey_checks import check_registered
from journeyman.plugins import PluginError, PluginManager, hookimpl
from journeyman.workflows import Journey, hours, journey, on_event
from pydantic import SecretStr


@journey("quiz_followup", trigger=on_event("quiz.completed"), listens=("quiz.shared",))
class QuizFollowup(Journey):
    async def steps(self) -> None:
        await self.wait_for("quiz.shared", timeout=hours(1))


class QuizPlugin:
    @hookimpl
    def register_event_types(self, register):  # type: ignore[no-untyped-def]
        register("quiz.completed")
        register("quiz.shared")

    @hookimpl
    def register_journeys(self, register):  # type: ignore[no-untyped-def]
        register(QuizFollowup)


def test_hook_register_event_types(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(secret_key=SecretStr("hooks-" + "k" * 40), data_dir=tmp_path)
    bare = PluginManager(load="builtin_channels")
    bare.register(_JourneyOnly(), name="journey-only")
    assert {p.name for p in check_registered(bare, settings, bare.journeys())} == {
        "quiz.completed",
        "quiz.shared",
    }

    pm = PluginManager(load="builtin_channels")
    pm.register(QuizPlugin(), name="quiz")
    assert pm.event_types() == {"quiz.completed", "quiz.shared"}
    assert check_registered(pm, settings, pm.journeys()) == []


def test_declaring_something_that_is_not_an_event_type() -> None:
    class Wrong:
        @hookimpl
        def register_event_types(self, register):  # type: ignore[no-untyped-def]
            register(42)

    pm = PluginManager(load="")
    pm.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="'wrong' declared 42, which is not an event type"):
        pm.event_types()


class _JourneyOnly:
    @hookimpl
    def register_journeys(self, register):  # type: ignore[no-untyped-def]
        register(QuizFollowup)


class _Shipping:
    @hookimpl
    def register_templates(self, register):  # type: ignore[no-untyped-def]
        register("quiz_thanks", {"email.subject": "Thanks", "email.text": "Thanks!"})


def test_hook_register_templates() -> None:
    pm = PluginManager(load="")
    pm.register(_Shipping(), name="quiz")
    assert pm.templates() == {"quiz_thanks": {"email.subject": "Thanks", "email.text": "Thanks!"}}
    assert pm.template_owners == {"quiz_thanks": "quiz"}
    pm.register(type("Again", (_Shipping,), {})(), name="again")
    with pytest.raises(PluginError, match="'quiz_thanks' is registered by both plugin 'quiz'"):
        pm.templates()

    class Wrong:
        @hookimpl
        def register_templates(self, register):  # type: ignore[no-untyped-def]
            register("no_parts")

    wrong = PluginManager(load="")
    wrong.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="'no_parts' without a mapping of parts"):
        wrong.templates()
