"""Personal fields sealed inside stored events.

Events are append-only, so a personal value that must become unreadable on erasure is
stored inside the event encrypted under the member's data key: the top-level field keeps
its name and holds `{"$sealed": "<base64 AES-GCM ciphertext>"}`. The associated data binds
the ciphertext to the member, the event id and the field name, so it cannot be moved to
another event or member. Once the data key is shredded, the field cannot be decrypted by
anyone, while the event (its type, time and other fields) stays as it was.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from engine.crypto import CryptoError, DataKey

SEALED = "$sealed"


def _purpose(event_id: str, name: str) -> str:
    return f"event:{event_id}:{name}"


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def seal_fields(
    data: Mapping[str, Any], key: DataKey, event_id: str, names: Iterable[str]
) -> dict[str, Any]:
    """`data` with each of `names` that it holds replaced by its sealed form."""
    out = dict(data)
    for name in names:
        if name in out and out[name] is not None and not is_sealed(out[name]):
            plain = json.dumps(out[name], separators=(",", ":"), ensure_ascii=False).encode()
            blob = key.encrypt(plain, _purpose(event_id, name))
            out[name] = {SEALED: base64.b64encode(blob).decode()}
    return out


def open_field(value: Any, key: DataKey | None, event_id: str, name: str) -> Any:
    """The plain value of one sealed field; raises `CryptoError` when it cannot be read."""
    if not is_sealed(value):
        return value
    if key is None:
        raise CryptoError(f"{name} of event {event_id}: the member's data key is gone")
    blob = base64.b64decode(value[SEALED])
    return json.loads(key.decrypt(blob, _purpose(event_id, name)))


def open_fields(data: Mapping[str, Any], key: DataKey | None, event_id: str) -> dict[str, Any]:
    """`data` with sealed fields decrypted; a field that cannot be decrypted any more (the
    member was erased) becomes None."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        try:
            out[name] = open_field(value, key, event_id, name)
        except (CryptoError, ValueError):
            out[name] = None
    return out
