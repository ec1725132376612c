"""Fixtures of the segment tests: settings with a fixed secret, and a fixed clock."""

from __future__ import annotations

import datetime as dt

import pytest
from journeyman.engine.core.settings import Settings
from pydantic import SecretStr

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(secret_key=SecretStr("test-secret-" + "x" * 32), data_dir=tmp_path)
