"""The data converter every Temporal client and worker of the engine uses.

Journeys carry member ids, event data, profiles and rendered links through Temporal, and
Temporal keeps them in workflow histories. `EncryptionCodec` encrypts every payload with
AES-256-GCM under a key derived (HKDF) from the server secret before it leaves the process,
so the Temporal server, its database and its web UI hold only ciphertext. Payloads written
without the codec (older histories) are read as they are.

    client = await Client.connect(address, data_converter=data_converter(settings))

Every process that talks to the same Temporal namespace must share the server secret.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from journeyman.engine.core.settings import Settings
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
_KEY_ID = b"journeyman-v1"
_NONCE = 12


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each serialised payload; the metadata names the encoding and key id."""

    def __init__(self, secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"journeyman temporal payloads v1"
        ).derive(secret)
        self._aead = AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(_NONCE)
            sealed = nonce + self._aead.encrypt(nonce, p.SerializeToString(), _KEY_ID)
            out.append(
                Payload(metadata={"encoding": ENCODING, "encryption-key-id": _KEY_ID}, data=sealed)
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # written without the codec: pass it through
                continue
            if p.metadata.get("encryption-key-id") != _KEY_ID:
                raise ValueError("a Temporal payload was encrypted with an unknown key id")
            plain = self._aead.decrypt(p.data[:_NONCE], p.data[_NONCE:], _KEY_ID)
            out.append(Payload.FromString(plain))
        return out


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter with payload encryption under the server secret."""
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(settings.resolved_secret())
    )
