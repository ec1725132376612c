"""Errors of the event store. Each says what happened, to which stream or event, and why."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every error the event store raises."""


class ConcurrencyError(EventStoreError):
    """A stream was not at the version the append expected; nothing of the batch was stored."""

    def __init__(self, stream_id: str, actual: int, expected: object) -> None:
        self.stream_id = stream_id
        self.actual = actual
        self.expected = expected
        actual_text = "has no events" if actual < 0 else f"is at version {actual}"
        super().__init__(f"stream {stream_id} {actual_text}, the append expected {expected}")


class InvalidEventError(EventStoreError, ValueError):
    """An event (or the batch it came in) was malformed; nothing of the batch was stored."""
