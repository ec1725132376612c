"""The development outbox: one JSON file per message, idempotent by key."""

from __future__ import annotations

import asyncio
import json

import pytest
from journeyman.channels import ChannelMisconfigured, Message
from journeyman.channels.outbox import OutboxChannel, read_outbox


async def test_writes_one_file_per_message(tmp_path) -> None:
    outbox = OutboxChannel({"directory": tmp_path})
    result = await outbox.send(Message(to="ann@example.com", subject="Hi", text="hello"), "k1")
    [path] = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["message"]["subject"] == "Hi"
    assert record["idempotency_key"] == "k1"
    assert result.provider_message_id == path.stem and not result.duplicate


async def test_same_key_is_written_once(tmp_path) -> None:
    outbox = OutboxChannel({"directory": tmp_path})
    results = await asyncio.gather(
        *(outbox.send(Message(to="ann@example.com", text=f"v{i}"), "same-key") for i in range(8))
    )
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.provider_message_id for r in results}) == 1
    assert [r["idempotency_key"] for r in read_outbox(tmp_path)] == ["same-key"]


async def test_unwritable_directory_is_misconfiguration(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    outbox = OutboxChannel({"directory": blocker / "outbox"})
    with pytest.raises(ChannelMisconfigured, match="OUTBOX__DIRECTORY"):
        await outbox.send(Message(to="a@b.c", text="x"), "k")


def test_configured_without_settings() -> None:
    assert OutboxChannel().configured
