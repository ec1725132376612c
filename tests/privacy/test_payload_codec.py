"""Temporal payload encryption: histories hold ciphertext; the engine's clients read them."""

from __future__ import annotations

import uuid

import pytest
from journeyman.engine.runtime.temporal_client import ENCODING, EncryptionCodec, data_converter
from journeyman.engine.runtime.worker import workflow_runner
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import Worker

from .conftest import make_settings
from .sleeper import Echo

EMAIL = "codec.person@example.com"


async def test_history_holds_only_ciphertext(temporal_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    base = temporal_env.client
    client = Client(**{**base.config(), "data_converter": data_converter(settings)})
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[Echo], workflow_runner=workflow_runner()
    ):
        handle = await client.start_workflow(
            Echo.run,
            {"email": EMAIL, "phone": "+14155550123"},
            id=f"codec-{queue}",
            task_queue=queue,
        )
        assert await handle.result() == {"email": EMAIL, "phone": "+14155550123"}
    history = await handle.fetch_history()
    raw = history.to_json()
    assert EMAIL not in raw and "14155550123" not in raw
    encodings = {
        p.metadata["encoding"]
        for e in history.events
        for p in (
            list(e.workflow_execution_started_event_attributes.input.payloads)
            + list(e.workflow_execution_completed_event_attributes.result.payloads)
        )
    }
    assert encodings == {ENCODING}

    again = Client(**{**base.config(), "data_converter": data_converter(settings)})
    assert await again.get_workflow_handle(handle.id).result() == {
        "email": EMAIL,
        "phone": "+14155550123",
    }
    # A client without the secret (or with another one) cannot read the result.
    plain = Client(**{**base.config()})
    other = Client(
        **{
            **base.config(),
            "data_converter": data_converter(
                make_settings(tmp_path / "x", secret_key="another-secret-" + "z" * 20)
            ),
        }
    )
    with pytest.raises(Exception):  # noqa: B017 - undecodable, whatever the converter says
        await plain.get_workflow_handle(handle.id).result()
    with pytest.raises(Exception):  # noqa: B017
        await other.get_workflow_handle(handle.id).result()


async def test_codec_round_trip_and_tamper_detection() -> None:
    codec = EncryptionCodec(b"s" * 32)
    original = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"a@b.c"}')
    (sealed,) = await codec.encode([original])
    assert b"a@b.c" not in sealed.data and sealed.metadata["encoding"] == ENCODING
    assert await codec.decode([sealed]) == [original]
    # payloads written before encryption was on pass through
    assert await codec.decode([original]) == [original]
    tampered = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        await codec.decode([tampered])
    with pytest.raises(Exception):  # noqa: B017
        await EncryptionCodec(b"t" * 32).decode([sealed])
