"""Delivery blocks: one per reason, so lifting one (an SMS START lifts the STOP) leaves the
others (a hard bounce) in place.

Revision ID: 0011
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE delivery_blocks DROP CONSTRAINT delivery_blocks_pkey")
    op.execute(
        "ALTER TABLE delivery_blocks ADD CONSTRAINT delivery_blocks_pkey "
        "PRIMARY KEY (member_id, channel, purpose, reason)"
    )


def downgrade() -> None:
    # keep the newest block of each (member, channel, purpose), as the old key allowed one
    op.execute(
        """
        DELETE FROM delivery_blocks b USING delivery_blocks newer
        WHERE newer.member_id = b.member_id AND newer.channel = b.channel
          AND newer.purpose = b.purpose AND newer.reason <> b.reason
          AND (newer.position, newer.reason) > (b.position, b.reason)
        """
    )
    op.execute("ALTER TABLE delivery_blocks DROP CONSTRAINT delivery_blocks_pkey")
    op.execute(
        "ALTER TABLE delivery_blocks ADD CONSTRAINT delivery_blocks_pkey "
        "PRIMARY KEY (member_id, channel, purpose)"
    )
