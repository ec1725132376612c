"""Due-at tables: the inactivity scan and the segment refresh read only the members who are
due, by partial index, instead of every profile.

* `inactivity_journeys`: each inactivity journey the scan knows, with the settings its due
  rows were computed with (a change of `inactive_days` or of the re-entry rule makes the
  scan recompute that journey's rows).
* `inactivity_due`: one row per (journey, member): the member's last activity, until when a
  run or the re-entry rule blocks a new run (`blocked_until`, 'infinity' for running or
  never again) and the moment the member becomes due (`due_at`, NULL when never).
* `segment_due`: per member, the next moment a time-based profile field (recency score,
  lifecycle stage) changes, when segments must be evaluated again without an event.

Self-contained: the backfill is plain SQL. It fills `inactivity_due` for the built-in
`winback` journey with its default settings (30 days, re-entry after 90 days) — the scan
recomputes them if the installation configured other settings, and registers any other
inactivity journey itself — and makes every profile's segments due once, now.

Revision ID: 0014
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE inactivity_journeys (
            journey text PRIMARY KEY,
            inactive_days double precision NOT NULL,
            reentry text NOT NULL,
            cooldown interval,
            workflow_prefix text NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE inactivity_due (
            journey text NOT NULL,
            member_id text NOT NULL,
            last_activity_at timestamptz NOT NULL,
            blocked_until timestamptz,
            due_at timestamptz,
            CONSTRAINT inactivity_due_pkey PRIMARY KEY (journey, member_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX inactivity_due_due_idx ON inactivity_due (journey, due_at, member_id) "
        "WHERE due_at IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE segment_due (
            member_id text PRIMARY KEY,
            due_at timestamptz
        )
        """
    )
    op.execute("CREATE INDEX segment_due_due_idx ON segment_due (due_at) WHERE due_at IS NOT NULL")
    op.execute(
        "INSERT INTO inactivity_journeys VALUES ('winback', 30, 'cooldown', interval '90 days', "
        "'journey/winback/')"
    )
    op.execute(
        """
        INSERT INTO inactivity_due (journey, member_id, last_activity_at, blocked_until, due_at)
        SELECT 'winback', p.member_id, p.last_activity_at, b.blocked,
               CASE WHEN b.blocked = 'infinity' THEN NULL
                    ELSE greatest(p.last_activity_at + interval '30 days', b.blocked) END
        FROM member_profiles p
        LEFT JOIN journey_instances j ON j.workflow_id = 'journey/winback/' || p.member_id
        CROSS JOIN LATERAL (SELECT CASE
            WHEN j.workflow_id IS NULL THEN NULL::timestamptz
            WHEN j.running OR j.pending THEN 'infinity'::timestamptz
            ELSE j.exited_at + interval '90 days' END AS blocked) b
        WHERE p.last_activity_at IS NOT NULL AND NOT p.erased AND p.merged_into IS NULL
        """
    )
    op.execute(
        "INSERT INTO segment_due (member_id, due_at) SELECT member_id, now() "
        "FROM member_profiles WHERE NOT erased AND merged_into IS NULL"
    )
    op.execute("ANALYZE inactivity_due")
    op.execute("ANALYZE segment_due")


def downgrade() -> None:
    op.execute("DROP TABLE segment_due")
    op.execute("DROP TABLE inactivity_due")
    op.execute("DROP TABLE inactivity_journeys")
