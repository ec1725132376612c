"""The one sanctioned rewrite of stored events: giving a member created before opaque ids
(migration `0008`) an engine-minted id (`journeyman members rekey`,
`journeyman.engine.identity.rekey`).

The append-only trigger keeps refusing every DELETE and TRUNCATE, and every UPDATE, except
an UPDATE made inside a transaction that has set both `journeyman.rekey_from` (the member's
old id) and `journeyman.rekey_to` (its new, minted id) with `SET LOCAL`, and then only when
the row keeps its position, transaction id, version, type and times, and its stream id stays
as it was or goes from `member-<old id>` to `member-<new id>`. Self-contained: it replaces
the trigger function of migration `0001`; downgrade restores it.

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MINTED = "^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            rekey_from text := current_setting('journeyman.rekey_from', true);
            rekey_to text := current_setting('journeyman.rekey_to', true);
        BEGIN
            -- NEW and OLD are read only for a row UPDATE (they are NULL otherwise).
            IF TG_OP = 'UPDATE' AND TG_LEVEL = 'ROW'
               AND coalesce(rekey_from, '') <> ''
               AND coalesce(rekey_to, '') ~ '{MINTED}'
               AND rekey_from <> rekey_to
            THEN
                IF NEW.global_position = OLD.global_position
                   AND NEW.tx_id = OLD.tx_id
                   AND NEW.stream_version = OLD.stream_version
                   AND NEW.type = OLD.type
                   AND NEW.occurred_at = OLD.occurred_at
                   AND NEW.recorded_at = OLD.recorded_at
                   AND (NEW.stream_id = OLD.stream_id
                        OR (OLD.stream_id = 'member-' || rekey_from
                            AND NEW.stream_id = 'member-' || rekey_to))
                THEN
                    RETURN NEW;
                END IF;
            END IF;
            RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
