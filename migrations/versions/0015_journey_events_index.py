"""An index of the events that name a journey, by journey and position: the deliveries page
filtered to one journey reads that journey's latest events backwards, instead of walking
the whole history back until it has found enough of them (a rare journey's cost grew with
the store).

Built in place (`CREATE INDEX`): it holds off appends while it builds, for a time that grows
with the store. Plan the upgrade for a quiet moment.

Revision ID: 0015
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX events_journey_position_idx ON events ((data->>'journey'), global_position) "
        "WHERE data->>'journey' IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX events_journey_position_idx")
