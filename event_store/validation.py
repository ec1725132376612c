"""Checks an append batch before it touches the database, so a bad batch stores nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

from .errors import InvalidEventError
from .model import ExpectedVersion, NewEvent, _Sentinel


def _not_serialisable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if c_make_encoder is not None:
    # CPython's C encoder, called directly: `json.dumps` builds a new one on every call.
    # markers=None skips the circular-reference bookkeeping: a cycle ends in RecursionError.
    _c_encode = c_make_encoder(
        None, _not_serialisable, encode_basestring, None, ":", ",", False, False, False
    )

    def _encode(value: object) -> str:
        return "".join(_c_encode(value, 0))

else:  # pragma: no cover - other interpreters
    import json

    _encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def to_json(value: object) -> str:
    """Compact JSON text exactly as the store writes it (raises TypeError/ValueError/
    RecursionError on what JSON cannot carry)."""
    return _encode(value)


def encode_json(value: object, part: str, event_id: str) -> str:
    """Compact JSON text (non-ASCII kept, NaN and infinities refused)."""
    try:
        return _encode(value)
    except RecursionError as exc:
        raise InvalidEventError(
            f"{part} of event {event_id} is nested too deeply or refers to itself"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"{part} of event {event_id} is not JSON-serialisable: {exc}"
        ) from exc


def _utf8(text: str, eid: str, stream_id: str) -> None:
    """Refuse text PostgreSQL cannot take as UTF-8 (a lone surrogate such as \\ud800): the
    COPY would fail halfway with an encoding error instead of a clear refusal."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidEventError(
            f"event {eid.encode(errors='backslashreplace').decode()} in stream "
            f"{stream_id.encode(errors='backslashreplace').decode()}: text may not contain "
            "lone surrogates"
        ) from None


def prepare_batch(
    items: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]],
) -> list[list[tuple[str, str]]]:
    """Check every event and encode its data and metadata, in one pass.

    Returns the JSON texts per item and event. Raises `InvalidEventError` naming the first
    problem; nothing has touched the database yet.
    """
    seen: dict[str, str] = {}
    encoded: list[list[tuple[str, str]]] = []
    meta_obj: object = None
    meta_text = ""
    for stream_id, events, expected in items:
        if type(stream_id) is not str or not stream_id.strip():
            raise InvalidEventError(f"stream id must be a non-empty string, got {stream_id!r}")
        if len(stream_id) > 400:
            raise InvalidEventError(f"stream id {stream_id[:40]!r}… is longer than 400 characters")
        if not isinstance(expected, _Sentinel | int) or isinstance(expected, bool):
            raise InvalidEventError(
                f"expected_version for stream {stream_id} must be ANY, NO_STREAM, "
                f"STREAM_EXISTS or an int, got {expected!r}"
            )
        if isinstance(expected, int) and expected < -1:
            raise InvalidEventError(
                f"expected_version for stream {stream_id} must be >= -1, got {expected}"
            )
        texts: list[tuple[str, str]] = []
        for event in events:
            if type(event) is not NewEvent:
                raise InvalidEventError(
                    f"stream {stream_id}: expected NewEvent, got {type(event).__name__}"
                )
            eid = event.event_id
            if type(eid) is not str or not eid:
                raise InvalidEventError(f"stream {stream_id}: event id must be a non-empty string")
            etype = event.type
            if type(etype) is not str or not etype:
                raise InvalidEventError(
                    f"event {eid} in stream {stream_id}: type must be a non-empty string"
                )
            if eid in seen:
                raise InvalidEventError(
                    f"event id {eid} appears twice in one batch "
                    f"(streams {seen[eid]} and {stream_id})"
                )
            seen[eid] = stream_id
            occurred = event.occurred_at
            if occurred is not None and (
                not isinstance(occurred, dt.datetime) or occurred.tzinfo is None
            ):
                raise InvalidEventError(
                    f"event {eid}: occurred_at must be a timezone-aware datetime"
                )
            data, metadata = event.data, event.metadata
            if type(data) is not dict:
                raise InvalidEventError(f"event {eid}: data must be a JSON object")
            data_text = encode_json(data, "data", eid)
            # Batches often share one metadata object: encode it once.
            if metadata is not meta_obj:
                if type(metadata) is not dict:
                    raise InvalidEventError(f"event {eid}: metadata must be a JSON object")
                meta_obj = metadata
                meta_text = encode_json(metadata, "metadata", eid)
            if "\\u0000" in data_text or "\\u0000" in meta_text:
                raise InvalidEventError(
                    f"event {eid} in stream {stream_id}: text may not contain NUL"
                )
            if (
                not (
                    data_text.isascii()
                    and meta_text.isascii()
                    and eid.isascii()
                    and etype.isascii()
                )
                or not stream_id.isascii()
            ):
                _utf8(data_text + meta_text + eid + etype + stream_id, eid, stream_id)
            texts.append((data_text, meta_text))
        encoded.append(texts)
    return encoded
