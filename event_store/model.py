"""Value types of the event store: what goes in, what comes out, and where a reader is."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ANY: Final = _Sentinel("ANY")
"""Append whatever the stream's version is."""
NO_STREAM: Final = _Sentinel("NO_STREAM")
"""Append only if the stream has no events yet."""
STREAM_EXISTS: Final = _Sentinel("STREAM_EXISTS")
"""Append only if the stream already has at least one event."""

ExpectedVersion = _Sentinel | int


def category_of(stream_id: str) -> str:
    """`member-42` -> `member`; a stream without a dash is its own category (Message DB's rule)."""
    return stream_id.split("-", 1)[0]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `event_id` is the idempotency key: appending it twice stores it once."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    global_position: int
    tx_id: int
    stream_id: str
    stream_version: int
    event_id: str
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    occurred_at: dt.datetime
    recorded_at: dt.datetime

    @property
    def category(self) -> str:
        return category_of(self.stream_id)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.tx_id, self.global_position)


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A reader's place in the whole store: after this (transaction id, global position).

    Readers order by `(tx_id, global_position)` and only read transactions older than the
    oldest one still running, so a cursor never has to go back for a late commit.
    """

    tx_id: int = 0
    position: int = 0

    def __str__(self) -> str:
        return f"{self.tx_id}.{self.position}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        try:
            tx, pos = text.split(".", 1)
            return cls(int(tx), int(pos))
        except ValueError as exc:
            raise ValueError(f"cursor {text!r} is not of the form '<tx_id>.<position>'") from exc


START: Final = Cursor(0, 0)


class AppendResult(NamedTuple):
    """Where an appended event landed. `duplicate` is true when the event id was already stored.

    A named tuple rather than a dataclass: appends create one per event, and this is cheaper.
    """

    event_id: str
    stream_id: str
    stream_version: int
    global_position: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class UndecodableEvent:
    """A stored row that could not be turned into a `RecordedEvent` (a column this client
    cannot decode, e.g. a timestamp before year 1). Its identifying columns, the error, and
    the other columns as PostgreSQL prints them, so a reader can park it and go on."""

    global_position: int
    tx_id: int
    stream_id: str
    stream_version: int
    event_id: str
    type: str
    error: str
    raw: dict[str, str | None] = field(default_factory=dict)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.tx_id, self.global_position)
