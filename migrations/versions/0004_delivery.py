"""Delivery: message ledger, frequency-cap ledger, provider-reported blocks, channel pauses.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE message_ledger (
            delivery_id text PRIMARY KEY,
            member_id text NOT NULL,
            journey text,
            step text,
            variant text,
            template text,
            purpose text,
            workflow_id text,
            channel text,
            status text NOT NULL,
            status_rank smallint NOT NULL,
            provider_message_id text,
            reason text,
            sent_at timestamptz,
            delivered_at timestamptz,
            opened_at timestamptz,
            clicked_at timestamptz,
            failed_at timestamptz,
            clicks integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX message_ledger_member_idx ON message_ledger (member_id)")
    op.execute("CREATE INDEX message_ledger_provider_idx ON message_ledger (provider_message_id)")
    op.execute("CREATE INDEX message_ledger_journey_idx ON message_ledger (journey, variant)")
    op.execute(
        """
        CREATE TABLE frequency_cap_ledger (
            delivery_id text PRIMARY KEY,
            member_id text NOT NULL,
            counted_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX frequency_cap_member_idx ON frequency_cap_ledger (member_id, counted_at)"
    )
    op.execute(
        """
        CREATE TABLE delivery_blocks (
            member_id text NOT NULL,
            channel text NOT NULL,
            purpose text NOT NULL,
            reason text NOT NULL,
            position bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (member_id, channel, purpose)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE channel_pauses (
            channel text PRIMARY KEY,
            reason text NOT NULL,
            paused_until timestamptz NOT NULL,
            detail jsonb,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("ANALYZE message_ledger, frequency_cap_ledger, delivery_blocks, channel_pauses")


def downgrade() -> None:
    op.execute("DROP TABLE channel_pauses")
    op.execute("DROP TABLE delivery_blocks")
    op.execute("DROP TABLE frequency_cap_ledger")
    op.execute("DROP TABLE message_ledger")
