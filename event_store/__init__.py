"""Journeyman's append-only event store on PostgreSQL.

Public face: `PostgresEventStore`, the value types, the expected-version markers and the
errors. Nothing here knows about members or journeys.
"""

from .errors import ConcurrencyError, EventStoreError, InvalidEventError, StaleTransactionError
from .model import (
    ANY,
    NO_STREAM,
    START,
    STREAM_EXISTS,
    AppendResult,
    Cursor,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    UndecodableEvent,
    category_of,
)
from .postgres import (
    PostgresEventStore,
    PreparedBatch,
    create_pool,
    lock_streams,
    partition_clause,
)
from .subscription import Subscription

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "STREAM_EXISTS",
    "AppendResult",
    "ConcurrencyError",
    "Cursor",
    "EventStoreError",
    "ExpectedVersion",
    "InvalidEventError",
    "NewEvent",
    "PostgresEventStore",
    "PreparedBatch",
    "RecordedEvent",
    "StaleTransactionError",
    "Subscription",
    "UndecodableEvent",
    "category_of",
    "create_pool",
    "lock_streams",
    "partition_clause",
]
