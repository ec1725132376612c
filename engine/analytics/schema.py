"""The journey analytics projection's tables as SQLAlchemy Core metadata (migration 0013
creates them; `journeyman.engine.analytics.projector` writes them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

metadata = MetaData()
_FALSE, _ZERO = text("false"), text("0")

journey_entries = Table(
    "journey_entries",
    metadata,
    Column("entry_id", Text, primary_key=True),
    Column("journey", Text),
    Column("workflow_id", Text),
    Column("variant", Text, nullable=False, server_default=text("'control'")),
    Column("holdout", Boolean, nullable=False, server_default=_FALSE),
    Column("entered_position", BigInteger),
    Column("sent", Integer, nullable=False, server_default=_ZERO),
    Column("withheld", Boolean, nullable=False, server_default=_FALSE),
    Column("delivered", Boolean, nullable=False, server_default=_FALSE),
    Column("clicked", Boolean, nullable=False, server_default=_FALSE),
    Column("converted", Boolean, nullable=False, server_default=_FALSE),
    Column("revenue", Numeric, nullable=False, server_default=_ZERO),
    Index("journey_entries_workflow_idx", "workflow_id", "entered_position"),
    Index("journey_entries_journey_idx", "journey", "variant", "holdout"),
)

journey_deliveries = Table(
    "journey_deliveries",
    metadata,
    Column("delivery_id", Text, primary_key=True),
    Column("entry_id", Text),
    Column("journey", Text),
    Column("channel", Text),
    Column("sends", Integer, nullable=False, server_default=_ZERO),
    Column("sent_position", BigInteger),
    Column("sent_epoch", Float(53)),
    Column("delivered", Boolean, nullable=False, server_default=_FALSE),
    Column("clicked", Boolean, nullable=False, server_default=_FALSE),
    Index("journey_deliveries_entry_idx", "entry_id"),
)

journey_conversions = Table(
    "journey_conversions",
    metadata,
    Column("global_position", BigInteger, primary_key=True),
    Column("journey", Text),
    Column("entry_id", Text),
    Column("delivery_id", Text),
    Column("at_epoch", Float(53)),
    Column("seconds", Float(53)),
    Index("journey_conversions_journey_idx", "journey", "seconds"),
    Index("journey_conversions_delivery_idx", "delivery_id"),
)


def _counts(name: str, keys: list[Column], values: list[str], money: list[str]) -> Table:
    return Table(
        name,
        metadata,
        *keys,
        *(Column(v, BigInteger, nullable=False, server_default=_ZERO) for v in values),
        *(Column(v, Numeric, nullable=False, server_default=_ZERO) for v in money),
        PrimaryKeyConstraint(*(k.name for k in keys), name=f"{name}_pkey"),
    )


journey_funnel_counts = _counts(
    "journey_funnel_counts",
    [
        Column("journey", Text, nullable=False),
        Column("variant", Text, nullable=False),
        Column("holdout", Boolean, nullable=False),
    ],
    ["entered", "messaged", "delivered", "clicked", "converted"],
    ["revenue", "revenue_sq"],
)
journey_channel_counts = _counts(
    "journey_channel_counts",
    [Column("journey", Text, nullable=False), Column("channel", Text, nullable=False)],
    ["sent", "delivered", "clicked"],
    [],
)
journey_outcome_counts = _counts(
    "journey_outcome_counts",
    [Column("journey", Text, nullable=False), Column("type", Text, nullable=False)],
    ["n"],
    [],
)
