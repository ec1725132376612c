"""Fixtures of the ingestion tests: settings with a fixed secret and an `Ingestor`."""

from __future__ import annotations

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr


@pytest.fixture
def settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(secret_key=SecretStr("test-secret-" + "x" * 32), data_dir=tmp_path)


@pytest.fixture
def ingestor(store: PostgresEventStore, settings: Settings) -> Ingestor:
    return Ingestor(store, settings)
