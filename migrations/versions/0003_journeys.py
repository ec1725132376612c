"""Journeys: the journey_instances projection (which journey runs each member is in).

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE journey_instances (
            workflow_id text PRIMARY KEY,
            journey text NOT NULL,
            member_id text NOT NULL,
            key text,
            running boolean NOT NULL DEFAULT false,
            pending boolean NOT NULL DEFAULT false,
            entry_id text,
            entries integer NOT NULL DEFAULT 0,
            variant text,
            holdout boolean,
            entered_at timestamptz,
            exited_at timestamptz,
            exit_reason text,
            converted boolean NOT NULL DEFAULT false,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX journey_instances_member_idx ON journey_instances (member_id, journey)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE journey_instances")
