"""Carts of clients that report them one product at a time (Segment's `Product Added` /
`Product Removed`): one row per cart with its owner and its lines, folded in the ingest
transaction (`journeyman.engine.ingest.carts`). A cart's row is deleted when an order closes it.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE carts (
            cart_id text PRIMARY KEY,
            member_id text NOT NULL,
            items jsonb NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX carts_member_idx ON carts (member_id, updated_at)")


def downgrade() -> None:
    op.execute("DROP TABLE carts")
