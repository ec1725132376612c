"""Per-member encryption and blind indexes, derived from the server secret.

Every member has a random 256-bit data key. Personal values (email, phone, push
subscriptions, other aliases) are stored only as AES-GCM ciphertext under that key, and the
data key itself is stored wrapped (AES-GCM) under a key-encryption key derived from the
server secret. Deleting a member's row in `member_keys` makes everything encrypted under it
unreadable: that is crypto-shredding, and the append-only event log never has to change.

Aliases are looked up through a blind index: HMAC-SHA256 of the alias kind and normalised
value under a second key derived from the secret, so equality can be tested without the
value being stored.

Wire format of a ciphertext: 1 version byte (1) | 12-byte nonce | ciphertext+tag. The
associated data binds a ciphertext to its member and purpose, so a value cannot be moved to
another member's row unnoticed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_UNWRAPPED_KEYS = 50_000
_NONCE = 12


class CryptoError(Exception):
    """A ciphertext could not be decrypted (wrong key, wrong member, or tampered)."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def _seal(key: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + key.encrypt(nonce, plaintext, aad)


def _open(key: AESGCM, blob: bytes, aad: bytes, what: str) -> bytes:
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        raise CryptoError(f"{what}: not a version-1 ciphertext")
    try:
        return key.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
    except InvalidTag as exc:
        raise CryptoError(f"{what}: authentication failed (wrong key or tampered)") from exc


@dataclass(frozen=True)
class DataKey:
    """One member's data key; encrypts that member's personal values."""

    member_id: str
    _aead: AESGCM

    def encrypt(self, plaintext: bytes, purpose: str) -> bytes:
        return _seal(self._aead, plaintext, f"{self.member_id}\x00{purpose}".encode())

    def for_member(self, member_id: str) -> DataKey:
        """The same key, bound to another member id (a member given a new id keeps its key;
        what it encrypts from then on is bound to the new id)."""
        return DataKey(member_id, self._aead)

    def decrypt(self, blob: bytes, purpose: str) -> bytes:
        return _open(
            self._aead,
            blob,
            f"{self.member_id}\x00{purpose}".encode(),
            f"{purpose} of member {self.member_id}",
        )


class Keyring:
    """The server-secret-derived keys: blind-index key and key-encryption key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the server secret must be at least 16 bytes")
        self._blind_key = _derive(secret, b"journeyman blind index v1")
        self._kek = AESGCM(_derive(secret, b"journeyman data key wrapping v1"))
        self._unwrap = functools.lru_cache(maxsize=_UNWRAPPED_KEYS)(self._unwrap_uncached)

    @classmethod
    def from_settings(cls, settings: object | None = None) -> Keyring:
        from journeyman.engine.core.settings import Settings, get_settings

        s = settings if isinstance(settings, Settings) else get_settings()
        return cls(s.resolved_secret())

    def blind(self, kind: str, value: str) -> bytes:
        """The blind index of a normalised alias value (32 bytes)."""
        return hmac.digest(self._blind_key, f"{kind}\x00{value}".encode(), hashlib.sha256)

    def new_data_key(self, member_id: str) -> tuple[DataKey, bytes]:
        """A fresh data key for `member_id` and its wrapped form to store."""
        raw = AESGCM.generate_key(bit_length=256)
        wrapped = _seal(self._kek, raw, f"data-key\x00{member_id}".encode())
        return DataKey(member_id, AESGCM(raw)), wrapped

    def rewrap(self, member_id: str, wrapped: bytes, new_member_id: str) -> bytes:
        """The same data key wrapped for `new_member_id` (a member given a new id keeps its
        key; the wrapping binds the key to the member's id)."""
        raw = _open(
            self._kek, wrapped, f"data-key\x00{member_id}".encode(), f"data key of {member_id}"
        )
        return _seal(self._kek, raw, f"data-key\x00{new_member_id}".encode())

    def unwrap(self, member_id: str, wrapped: bytes) -> DataKey:
        """The data key stored wrapped as `wrapped`. Recently unwrapped keys are kept (a busy
        member's events arrive batch after batch); a shredded key cannot be asked for again,
        since only its stored wrapped form leads to it."""
        return self._unwrap(member_id, bytes(wrapped))

    def _unwrap_uncached(self, member_id: str, wrapped: bytes) -> DataKey:
        raw = _open(
            self._kek, wrapped, f"data-key\x00{member_id}".encode(), f"data key of {member_id}"
        )
        return DataKey(member_id, AESGCM(raw))


async def load_data_keys(
    conn: asyncpg.Connection | asyncpg.Pool, keyring: Keyring, member_ids: Iterable[str]
) -> dict[str, DataKey]:
    """The data keys of the given members that still have one (shredded ones are absent)."""
    rows = await conn.fetch(
        "SELECT member_id, wrapped_key FROM member_keys WHERE member_id = ANY($1::text[])",
        list(member_ids),
    )
    return {r["member_id"]: keyring.unwrap(r["member_id"], r["wrapped_key"]) for r in rows}


async def shred_member_key(conn: asyncpg.Connection, member_id: str) -> bool:
    """Delete a member's data key; everything encrypted under it becomes unreadable."""
    status = await conn.execute("DELETE FROM member_keys WHERE member_id = $1", member_id)
    return status.endswith(" 1")
