"""Tables of the ingestion area as SQLAlchemy Core metadata (migration 0002 creates them).

- `api_keys`: hashed API keys with scopes.
- `members`, `member_keys`, `member_aliases`, `push_subscriptions`: identity. Aliases are
  found by a blind index (HMAC of the normalised value); their values, and push
  subscriptions, are kept only encrypted with the member's data key (`member_keys`), so
  deleting that key shreds them.
- `member_profiles`: the profile projection (`journeyman.engine.profiles`), one row per member.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True, comment="public lookup prefix of the token"),
    Column("secret_hash", LargeBinary, nullable=False, comment="sha256 of the whole token"),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("name", Text, nullable=False, server_default=text("''")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
)

members = Table(
    "members",
    metadata,
    Column("member_id", Text, primary_key=True),
    Column("seq", BigInteger, Identity(always=True), nullable=False, unique=True),
    Column("merged_into", Text, ForeignKey("members.member_id")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("erased_at", DateTime(timezone=True)),
    Index("members_merged_into_idx", "merged_into"),
)

member_keys = Table(
    "member_keys",
    metadata,
    Column("member_id", Text, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False, comment="data key, AES-GCM-wrapped"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

member_aliases = Table(
    "member_aliases",
    metadata,
    Column("kind", Text, nullable=False),
    Column("blind", LargeBinary, nullable=False, comment="HMAC-SHA256 of kind and value"),
    Column("member_id", Text, nullable=False),
    Column("value_enc", LargeBinary, nullable=False, comment="value under the member's data key"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("kind", "blind", name="member_aliases_pkey"),
    Index("member_aliases_member_idx", "member_id"),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("blind", LargeBinary, primary_key=True),
    Column("member_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("value_enc", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("push_subscriptions_member_idx", "member_id"),
)

member_profiles = Table(
    "member_profiles",
    metadata,
    Column("member_id", Text, primary_key=True),
    Column("first_seen_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
    Column("last_activity_at", DateTime(timezone=True)),
    Column("last_order_at", DateTime(timezone=True)),
    Column("order_count", Integer, nullable=False, server_default=text("0")),
    Column("monetary_value", Double, nullable=False, server_default=text("0")),
    Column("recency_score", SmallInteger),
    Column("frequency_score", SmallInteger),
    Column("monetary_score", SmallInteger),
    Column("lifecycle_stage", Text, nullable=False, server_default=text("'new'")),
    Column("consent", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("timezone", Text),
    Column("locale", Text),
    Column("suppressed", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("traits", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("erased", Boolean, nullable=False, server_default=text("false")),
    Column("merged_into", Text),
    Column("event_count", BigInteger, nullable=False, server_default=text("0")),
    Column("last_position", BigInteger, nullable=False, server_default=text("0")),
    Index("member_profiles_last_activity_idx", "last_activity_at"),
)
