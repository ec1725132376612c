"""The outbox lives under the data directory (`JOURNEYMAN_DATA_DIR`), whatever the working
directory of the process that writes it; its own setting still wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from journeyman.channels.outbox import read_outbox
from journeyman.engine.core.delivery_settings import DeliverySettings
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.workers import build_deliverer, load_channels
from pydantic import SecretStr

from .delivery_testkit import SECRET, add_member, request


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("JOURNEYMAN_DATA_DIR", str(data))
    monkeypatch.setenv("JOURNEYMAN_SECRET_KEY", SECRET)
    return data, elsewhere


def test_outbox_defaults_to_the_data_directory(places: tuple[Path, Path]) -> None:
    data, _ = places
    outbox = load_channels(Settings())["outbox"]
    assert outbox.directory == data.resolve() / "outbox"  # type: ignore[attr-defined]


def test_outbox_directory_setting_wins(
    places: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYMAN_CHANNELS__OUTBOX__DIRECTORY", str(tmp_path / "mine"))
    outbox = load_channels(Settings())["outbox"]
    assert outbox.directory == tmp_path / "mine"  # type: ignore[attr-defined]


async def test_fallback_sends_land_under_the_data_directory(
    places: tuple[Path, Path], store
) -> None:
    data, elsewhere = places
    settings = Settings(
        secret_key=SecretStr(SECRET),
        delivery=DeliverySettings(quiet_hours_start=None, frequency_cap=None, outbox_fallback=True),
    )
    assert settings.data_dir == data
    member = await add_member(store, settings)
    # SMS has no credentials here: with the fallback on, its message goes to the outbox.
    d = build_deliverer(store, settings, channel_queues=False)
    outcome = await d.deliver(request(member, ["sms"]))
    assert outcome.status == "sent"
    assert len(list(read_outbox(data / "outbox"))) == 1
    assert not (elsewhere / ".journeyman").exists()
