"""The segment membership table as SQLAlchemy Core metadata (migration 0006 creates it)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, MetaData, PrimaryKeyConstraint, Table, Text

metadata = MetaData()

segment_memberships = Table(
    "segment_memberships",
    metadata,
    Column("segment", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("segment", "member_id", name="segment_memberships_pkey"),
    Index("segment_memberships_member_idx", "member_id"),
)
