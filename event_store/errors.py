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


class StaleTransactionError(ConcurrencyError):
    """An append inside a caller's transaction lost a race to a newer transaction.

    Readers order events by transaction, so a transaction that obtained its id before a
    newer one appended to the same stream cannot append behind it. Nothing of the batch was
    stored; retry the whole transaction. Appends that do not pass `conn` never see this.
    """

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.actual = -1
        self.expected = None
        Exception.__init__(
            self,
            f"stream {stream_id} was appended to by a newer transaction while this one was "
            "open; retry the whole transaction",
        )
