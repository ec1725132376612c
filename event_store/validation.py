"""Checks an append batch before it touches the database, so a bad batch stores nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from .errors import InvalidEventError
from .model import ExpectedVersion, NewEvent, _Sentinel

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json(value: object, *, what: str) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"{what} is not JSON-serialisable: {exc}") from exc


def check_batch(items: Sequence[tuple[str, Sequence[NewEvent], ExpectedVersion]]) -> None:
    seen: dict[str, str] = {}
    for stream_id, events, expected in items:
        if not isinstance(stream_id, str) or not stream_id.strip():
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
        for event in events:
            if not isinstance(event, NewEvent):
                raise InvalidEventError(
                    f"stream {stream_id}: expected NewEvent, got {type(event).__name__}"
                )
            if not isinstance(event.event_id, str) or not event.event_id:
                raise InvalidEventError(f"stream {stream_id}: event id must be a non-empty string")
            if not isinstance(event.type, str) or not event.type:
                raise InvalidEventError(
                    f"event {event.event_id} in stream {stream_id}: type must be a non-empty string"
                )
            if event.event_id in seen:
                raise InvalidEventError(
                    f"event id {event.event_id} appears twice in one batch "
                    f"(streams {seen[event.event_id]} and {stream_id})"
                )
            seen[event.event_id] = stream_id
            if event.occurred_at is not None and (
                not isinstance(event.occurred_at, dt.datetime) or event.occurred_at.tzinfo is None
            ):
                raise InvalidEventError(
                    f"event {event.event_id}: occurred_at must be a timezone-aware datetime"
                )
            if not isinstance(event.data, dict):
                raise InvalidEventError(f"event {event.event_id}: data must be a JSON object")
            if not isinstance(event.metadata, dict):
                raise InvalidEventError(f"event {event.event_id}: metadata must be a JSON object")
