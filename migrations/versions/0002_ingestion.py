"""Ingestion: API keys, identity (aliases, members, contact points) and member profiles.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            key_id text PRIMARY KEY,
            secret_hash bytea NOT NULL,
            scopes text[] NOT NULL,
            name text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE members (
            member_id text PRIMARY KEY,
            seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL UNIQUE,
            merged_into text REFERENCES members (member_id),
            created_at timestamptz NOT NULL DEFAULT now(),
            erased_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX members_merged_into_idx ON members (merged_into)")
    op.execute(
        """
        CREATE TABLE member_keys (
            member_id text PRIMARY KEY,
            wrapped_key bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE member_aliases (
            kind text NOT NULL,
            blind bytea NOT NULL,
            member_id text NOT NULL,
            value_enc bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT member_aliases_pkey PRIMARY KEY (kind, blind)
        )
        """
    )
    op.execute("CREATE INDEX member_aliases_member_idx ON member_aliases (member_id)")
    op.execute(
        """
        CREATE TABLE push_subscriptions (
            blind bytea PRIMARY KEY,
            member_id text NOT NULL,
            kind text NOT NULL,
            value_enc bytea NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX push_subscriptions_member_idx ON push_subscriptions (member_id)")
    op.execute(
        """
        CREATE TABLE member_profiles (
            member_id text PRIMARY KEY,
            first_seen_at timestamptz,
            last_seen_at timestamptz,
            last_activity_at timestamptz,
            last_order_at timestamptz,
            order_count integer NOT NULL DEFAULT 0,
            monetary_value double precision NOT NULL DEFAULT 0,
            recency_score smallint,
            frequency_score smallint,
            monetary_score smallint,
            lifecycle_stage text NOT NULL DEFAULT 'new',
            consent jsonb NOT NULL DEFAULT '{}'::jsonb,
            timezone text,
            locale text,
            suppressed jsonb NOT NULL DEFAULT '{}'::jsonb,
            traits jsonb NOT NULL DEFAULT '{}'::jsonb,
            erased boolean NOT NULL DEFAULT false,
            merged_into text,
            event_count bigint NOT NULL DEFAULT 0,
            last_position bigint NOT NULL DEFAULT 0
        )
        """
    )
    op.execute(
        "CREATE INDEX member_profiles_last_activity_idx ON member_profiles (last_activity_at)"
    )


def downgrade() -> None:
    for table in (
        "member_profiles",
        "push_subscriptions",
        "member_aliases",
        "member_keys",
        "members",
        "api_keys",
    ):
        op.execute(f"DROP TABLE {table}")
