"""Dashboard sessions: the sign-in cookie holds a random session id, stored here hashed with
its admin key and expiry (`journeyman.engine.access.sessions`).

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE dashboard_sessions (
            session_hash bytea NOT NULL,
            key_id text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            CONSTRAINT dashboard_sessions_pkey PRIMARY KEY (session_hash)
        )
        """
    )
    op.execute("CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE dashboard_sessions")
