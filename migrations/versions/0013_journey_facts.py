"""Journey analytics projection: per-entry and per-delivery facts and the funnel counts kept
from them (see `journeyman.engine.analytics.projector`; metadata in
`journeyman.engine.analytics.schema`).

The tables start empty with no checkpoint: the projection replays the store from its start
the first time it runs, and until it has caught up the reports fold the events it has not
reached yet themselves, so events recorded before this migration count from the first read.

Self-contained: plain SQL, no imports from the application.

Revision ID: 0013
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TABLES = (
    """
    CREATE TABLE journey_entries (
        entry_id text PRIMARY KEY,
        journey text,
        workflow_id text,
        variant text NOT NULL DEFAULT 'control',
        holdout boolean NOT NULL DEFAULT false,
        entered_position bigint,
        sent integer NOT NULL DEFAULT 0,
        withheld boolean NOT NULL DEFAULT false,
        delivered boolean NOT NULL DEFAULT false,
        clicked boolean NOT NULL DEFAULT false,
        converted boolean NOT NULL DEFAULT false,
        revenue numeric NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX journey_entries_workflow_idx ON journey_entries (workflow_id, entered_position)",
    "CREATE INDEX journey_entries_journey_idx ON journey_entries (journey, variant, holdout)",
    """
    CREATE TABLE journey_deliveries (
        delivery_id text PRIMARY KEY,
        entry_id text,
        journey text,
        channel text,
        sends integer NOT NULL DEFAULT 0,
        sent_position bigint,
        sent_epoch double precision,
        delivered boolean NOT NULL DEFAULT false,
        clicked boolean NOT NULL DEFAULT false
    )
    """,
    "CREATE INDEX journey_deliveries_entry_idx ON journey_deliveries (entry_id)",
    """
    CREATE TABLE journey_conversions (
        global_position bigint PRIMARY KEY,
        journey text,
        entry_id text,
        delivery_id text,
        at_epoch double precision,
        seconds double precision
    )
    """,
    "CREATE INDEX journey_conversions_journey_idx ON journey_conversions (journey, seconds)",
    "CREATE INDEX journey_conversions_delivery_idx ON journey_conversions (delivery_id)",
    """
    CREATE TABLE journey_funnel_counts (
        journey text NOT NULL,
        variant text NOT NULL,
        holdout boolean NOT NULL,
        entered bigint NOT NULL DEFAULT 0,
        messaged bigint NOT NULL DEFAULT 0,
        delivered bigint NOT NULL DEFAULT 0,
        clicked bigint NOT NULL DEFAULT 0,
        converted bigint NOT NULL DEFAULT 0,
        revenue numeric NOT NULL DEFAULT 0,
        revenue_sq numeric NOT NULL DEFAULT 0,
        PRIMARY KEY (journey, variant, holdout)
    )
    """,
    """
    CREATE TABLE journey_channel_counts (
        journey text NOT NULL,
        channel text NOT NULL,
        sent bigint NOT NULL DEFAULT 0,
        delivered bigint NOT NULL DEFAULT 0,
        clicked bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (journey, channel)
    )
    """,
    """
    CREATE TABLE journey_outcome_counts (
        journey text NOT NULL,
        type text NOT NULL,
        n bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (journey, type)
    )
    """,
)


def upgrade() -> None:
    for sql in _TABLES:
        op.execute(sql)


def downgrade() -> None:
    for table in (
        "journey_outcome_counts",
        "journey_channel_counts",
        "journey_funnel_counts",
        "journey_conversions",
        "journey_deliveries",
        "journey_entries",
    ):
        op.execute(f"DROP TABLE {table}")
    op.execute("DELETE FROM subscription_checkpoints WHERE name = 'journey_stats'")
