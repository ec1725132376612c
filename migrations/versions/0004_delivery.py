"""Delivery: delivery ledger, outbox, suppression and frequency-cap state.

Revision ID: 0004
"""

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
