"""Personal values sealed inside stored events.

Events are append-only, so a personal value that must become unreadable on erasure is
stored inside the event encrypted (AES-GCM) under the member's data key
(`journeyman.engine.identity.crypto`).
Once the data key is shredded nobody can decrypt it, while the event (its type, time and
the fields left in the clear) stays as it was. Two shapes exist:

* a sealed field: a top-level field keeps its name and holds
  `{"$sealed": "<base64 ciphertext>"}` (consent evidence, `seal_fields`);
* a sealed remainder: the fields of an ingested event outside the clear list are taken out
  and stored together as one ciphertext under the top-level key `"$sealed"`, next to the
  fields left in the clear (`seal_event`):
  `{"cart_id": "c-1", "total": 42.5, "$sealed": "<base64 ciphertext>"}`.

The associated data binds a ciphertext to the member, the event id and the field name
(`$sealed` for a remainder), so it cannot be moved to another event or member.

`open_fields` reads both shapes back: sealed fields are decrypted in place (None when they
cannot be any more), a sealed remainder is merged back into the data (its fields are
absent when it cannot be). This module sits below every reader (ingestion, the profile
projection, the API, export) and depends only on `journeyman.engine.identity.crypto`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from journeyman.engine.identity.crypto import CryptoError, DataKey
from journeyman.event_store.validation import to_json

SEALED = "$sealed"
ALWAYS_SEALED = frozenset({"traits", SEALED})
"""Fields of an ingested event that are sealed whatever the clear list says."""


def _purpose(event_id: str, name: str) -> str:
    return f"event:{event_id}:{name}"


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


def has_sealed(data: Mapping[str, Any]) -> bool:
    """True when `data` holds a sealed remainder or a sealed field."""
    return SEALED in data or any(type(v) is dict and is_sealed(v) for v in data.values())


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


def personal_names(data: Mapping[str, Any], clear: Collection[str]) -> list[str]:
    """The fields of `data` that `seal_event` would seal: those outside `clear`, and
    `traits` always."""
    return [k for k in data if k not in clear or k in ALWAYS_SEALED]


def seal_event(
    data: Mapping[str, Any], key: DataKey, event_id: str, clear: Collection[str]
) -> dict[str, Any]:
    """`data` with every field outside `clear` (and `traits` always) moved into one sealed
    remainder under `"$sealed"`; `data` itself when there is nothing to seal.

    Raises ValueError when the remainder holds what JSON or the event store cannot carry
    (NaN or infinite numbers, NUL characters)."""
    personal = personal_names(data, clear)
    if not personal:
        return dict(data)
    out = {k: v for k, v in data.items() if k in clear and k not in ALWAYS_SEALED}
    # Compact, non-ASCII kept, NaN and infinities refused: what the event store accepts.
    plain = to_json({k: data[k] for k in personal})
    if "\\u0000" in plain:
        raise ValueError(f"event {event_id}: text may not contain NUL")
    blob = key.encrypt(plain.encode(), _purpose(event_id, SEALED))
    out[SEALED] = base64.b64encode(blob).decode()
    return out


def open_field(value: Any, key: DataKey | None, event_id: str, name: str) -> Any:
    """The plain value of one sealed field; raises `CryptoError` when it cannot be read."""
    if not is_sealed(value):
        return value
    if key is None:
        raise CryptoError(f"{name} of event {event_id}: the member's data key is gone")
    blob = base64.b64decode(value[SEALED])
    return json.loads(key.decrypt(blob, _purpose(event_id, name)))


def _open_remainder(value: Any, key: DataKey | None, event_id: str) -> dict[str, Any]:
    if not isinstance(value, str) or key is None:
        return {}
    try:
        rest = json.loads(key.decrypt(base64.b64decode(value), _purpose(event_id, SEALED)))
    except (CryptoError, ValueError):
        return {}
    return rest if isinstance(rest, dict) else {}


def open_fields(data: Mapping[str, Any], key: DataKey | None, event_id: str) -> dict[str, Any]:
    """`data` with sealed values decrypted. Once the member is erased (no key), a sealed
    field becomes None and the fields of a sealed remainder are absent."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name == SEALED:
            continue
        try:
            out[name] = open_field(value, key, event_id, name)
        except (CryptoError, ValueError):
            out[name] = None
    if SEALED in data:
        for name, value in _open_remainder(data[SEALED], key, event_id).items():
            out.setdefault(name, value)
    return out


def reseal(
    data: Mapping[str, Any], old: DataKey, old_event_id: str, new: DataKey, new_event_id: str
) -> dict[str, Any]:
    """`data` with its sealed values re-encrypted for another member id or event id (the
    associated data binds them to both). Values that cannot be opened stay as they are."""
    out = dict(data)
    for name, value in data.items():
        if name == SEALED and isinstance(value, str):
            blob = value
        elif is_sealed(value):
            blob = value[SEALED]
        else:
            continue
        try:
            plain = old.decrypt(base64.b64decode(blob), _purpose(old_event_id, name))
        except (CryptoError, ValueError):
            continue
        sealed = base64.b64encode(new.encrypt(plain, _purpose(new_event_id, name))).decode()
        out[name] = sealed if name == SEALED else {SEALED: sealed}
    return out
