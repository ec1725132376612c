"""Opaque member ids: the client's user id becomes an alias (`user_id`, blind-indexed).

Members created from now on get a random internal id; the id a client sends as
`member.id` (or Segment's `userId`) is stored only as the `user_id` alias: its HMAC for
look-ups and its value encrypted under the member's data key.

Events are append-only, so existing stream ids cannot change. Every member that exists at
upgrade keeps its id as the store's id (its history, profile, journeys and delivery records
stay where they are). A user id equal to a store member id reaches that member, and the
resolver then records the `user_id` alias for it, so a client sending the id it always
sent reaches the same person. Members known only by their stream (`member-<id>` events
without a `members` row) get a row, so that they are found the same way.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO members (member_id)
        SELECT DISTINCT substr(stream_id, 8) FROM events
        WHERE stream_id LIKE 'member-%'
        ON CONFLICT (member_id) DO NOTHING
        """
    )


def downgrade() -> None:
    """Nothing to undo: the rows added name members that exist."""
