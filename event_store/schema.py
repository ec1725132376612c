"""The event store's tables as SQLAlchemy Core metadata (migrations are generated from this).

`events` is append-only: the code has no UPDATE or DELETE path for it. `tx_id` is the id of
the appending transaction (`pg_current_xact_id()`); readers use it to never skip a late commit
(see docs/architecture.md, "Gap-safe reading").
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import UserDefinedType


class Xid8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id type."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("global_position", BigInteger, Identity(always=False), primary_key=True),
    Column("tx_id", Xid8(), nullable=False, server_default=text("pg_current_xact_id()")),
    Column("stream_id", Text, nullable=False),
    Column("category", Text, Computed("split_part(stream_id, '-', 1)", persisted=True)),
    Column("stream_version", BigInteger, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream_id", "stream_version", name="events_stream_version_key"),
    UniqueConstraint("event_id", name="events_event_id_key"),
    Index("events_tx_position_idx", "tx_id", "global_position"),
    Index("events_category_tx_position_idx", "category", "tx_id", "global_position"),
    Index("events_type_idx", "type", "tx_id", "global_position"),
    # The deliveries page's journey filter: one journey's latest events, read backwards.
    Index(
        "events_journey_position_idx",
        text("(data->>'journey')"),
        "global_position",
        postgresql_where=text("data->>'journey' IS NOT NULL"),
    ),
)

checkpoints = Table(
    "subscription_checkpoints",
    metadata,
    Column("name", Text, nullable=False),
    Column("partition", Integer, nullable=False, server_default=text("0")),
    Column("partitions", Integer, nullable=False, server_default=text("1")),
    Column("tx_id", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("name", "partition", "partitions", name="subscription_checkpoints_pkey"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("consumer", Text, nullable=False),
    Column("partition", Integer, nullable=False, server_default=text("0")),
    Column("partitions", Integer, nullable=False, server_default=text("1")),
    Column("global_position", BigInteger, nullable=False),
    Column("tx_id", BigInteger, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("first_failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_failed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status", Text, nullable=False, server_default=text("'parked'")),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", Text),
    UniqueConstraint("consumer", "global_position", name="dead_letters_consumer_position_key"),
    Index("dead_letters_status_idx", "status", "id"),
)
"""Events a subscriber gave up on (see `journeyman.event_store.deadletters`): parked, not lost."""
