"""Tables of the delivery area as SQLAlchemy Core metadata (migration 0004 creates them).

- `message_ledger`: one row per delivery, the state of each message as reports need it. It is
  folded monotonically from the `message.*` events (a late "sent" never overwrites
  "delivered") and can be rebuilt from the store (`journeyman.engine.delivery.ledger.rebuild`).
- `frequency_cap_ledger`: the marketing messages that count against each member's rolling
  frequency cap, one row per delivery. Inserted under a per-member advisory lock.
- `delivery_blocks`: provider-reported opt-outs and bounces (SMS STOP, hard bounce, provider
  says unsubscribed) that must stop the very next send, before the profile projection has
  folded the event that records them. A block binds only while the profile's projection
  position is below the block's event position; after that the profile is authoritative.
- `channel_pauses`: channels paused after a configuration error, until a time.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

message_ledger = Table(
    "message_ledger",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("member_id", Text, nullable=False),
    Column("journey", Text),
    Column("step", Text),
    Column("variant", Text),
    Column("template", Text),
    Column("purpose", Text),
    Column("workflow_id", Text),
    Column("channel", Text),
    Column("status", Text, nullable=False),
    Column("status_rank", SmallInteger, nullable=False),
    Column("provider_message_id", Text),
    Column("reason", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    Column("opened_at", DateTime(timezone=True)),
    Column("clicked_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),
    Column("clicks", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("message_ledger_member_idx", "member_id"),
    Index("message_ledger_provider_idx", "provider_message_id"),
    Index("message_ledger_journey_idx", "journey", "variant"),
)

frequency_cap_ledger = Table(
    "frequency_cap_ledger",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("member_id", Text, nullable=False),
    Column("counted_at", DateTime(timezone=True), nullable=False),
    Index("frequency_cap_member_idx", "member_id", "counted_at"),
)

delivery_blocks = Table(
    "delivery_blocks",
    metadata,
    Column("member_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("member_id", "channel", "purpose", "reason"),
)

channel_pauses = Table(
    "channel_pauses",
    metadata,
    Column("channel", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("paused_until", DateTime(timezone=True), nullable=False),
    Column("detail", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
