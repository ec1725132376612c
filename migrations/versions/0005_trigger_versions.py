"""Journey instances remember the last trigger they were handed (its member-stream version),
so a trigger re-delivered after a dispatcher restart never starts a second run.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE journey_instances ADD COLUMN last_trigger_version bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE journey_instances DROP COLUMN last_trigger_version")
