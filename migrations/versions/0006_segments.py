"""Segment memberships: who is in which segment (computed from the member profile), since
when. Entries and exits are also events on the member's stream (`segment.entered`,
`segment.exited`); this table is what decides whether a member is in.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE segment_memberships (
            segment text NOT NULL,
            member_id text NOT NULL,
            entered_at timestamptz NOT NULL,
            CONSTRAINT segment_memberships_pkey PRIMARY KEY (segment, member_id)
        )
        """
    )
    op.execute("CREATE INDEX segment_memberships_member_idx ON segment_memberships (member_id)")


def downgrade() -> None:
    op.execute("DROP TABLE segment_memberships")
