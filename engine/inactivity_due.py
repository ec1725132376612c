"""When each member becomes due for each inactivity journey (`inactivity_due`), so the scan
reads only who is due, by the partial index on `due_at`, never every profile.

A row per (journey, member) holds the member's last activity, `blocked_until` (a run is
open or the re-entry rule forbids one until then; 'infinity' for running or never again)
and `due_at = greatest(last_activity_at + inactive_days, blocked_until)`, NULL when never.
It is kept current by:

* the profile projector (`track_activity`), in the transaction of the profile write, when a
  member's last activity changes, or the member is erased or merged away;
* the scan (`claim_due` / `mark_claimed_started`), which takes due rows under a lease and
  blocks them once their runs are started;
* the end of a run (`run_ended`, called by `journey_instances`' exit and "gone" folds),
  which applies the journey's re-entry rule: a member who may not re-enter gets no
  `due_at` again, and is never read by a scan again.

The journeys and the settings the rows were computed with live in `inactivity_journeys`;
`register` (run by every scan) adds a journey it has not seen, or recomputes a journey's
rows when its `inactive_days` or re-entry rule changed — one pass over that journey's
members, once per change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

PROFILES_LOCK = 0x4A4D5F50524F46
"""The profile projector's advisory lock (`engine.profiles.projector._LOCK`): a
recomputation holds it so no profile batch interleaves."""

_DUE = (
    "CASE WHEN {blocked} = 'infinity'::timestamptz THEN NULL "
    "ELSE greatest({last} + {days} * interval '1 day', {blocked}) END"
)

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class InactivityJourney:
    """What the due rows of one inactivity journey are computed with."""

    journey: str
    inactive_days: float
    reentry: str  # "never" | "cooldown" | "always"
    cooldown: dt.timedelta | None
    workflow_prefix: str


async def register(conn: asyncpg.Connection, j: InactivityJourney) -> str:
    """Make `inactivity_due` right for `j`: "same" when it already was, otherwise
    "added"/"recomputed" after (re)building the journey's rows from the profiles and
    `journey_instances`. Call inside a transaction."""
    row = await conn.fetchrow(
        "SELECT inactive_days, reentry, cooldown, workflow_prefix FROM inactivity_journeys "
        "WHERE journey = $1",
        j.journey,
    )
    if row is not None and (
        row["inactive_days"] == j.inactive_days
        and row["reentry"] == j.reentry
        and row["cooldown"] == j.cooldown
        and row["workflow_prefix"] == j.workflow_prefix
    ):
        return "same"
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PROFILES_LOCK)
    await conn.execute(
        "INSERT INTO inactivity_journeys VALUES ($1, $2, $3, $4, $5) ON CONFLICT (journey) DO "
        "UPDATE SET inactive_days = $2, reentry = $3, cooldown = $4, workflow_prefix = $5",
        j.journey,
        j.inactive_days,
        j.reentry,
        j.cooldown,
        j.workflow_prefix,
    )
    await conn.execute("DELETE FROM inactivity_due WHERE journey = $1", j.journey)
    due = _DUE.format(blocked="b.blocked", last="p.last_activity_at", days="$2::float8")
    await conn.execute(
        f"""
        INSERT INTO inactivity_due (journey, member_id, last_activity_at, blocked_until, due_at)
        SELECT $1, p.member_id, p.last_activity_at, b.blocked, {due}
        FROM member_profiles p
        LEFT JOIN journey_instances j ON j.workflow_id = $5 || p.member_id
        CROSS JOIN LATERAL (SELECT CASE
            WHEN j.workflow_id IS NULL THEN NULL::timestamptz
            WHEN j.running OR j.pending OR $3 = 'never' THEN 'infinity'::timestamptz
            WHEN $3 = 'always' THEN NULL::timestamptz
            ELSE j.exited_at + coalesce($4::interval, interval '0') END AS blocked) b
        WHERE p.last_activity_at IS NOT NULL AND NOT p.erased AND p.merged_into IS NULL
        """,
        j.journey,
        j.inactive_days,
        j.reentry,
        j.cooldown,
        j.workflow_prefix,
    )
    return "added" if row is None else "recomputed"


async def track_activity(
    conn: asyncpg.Connection,
    active: Iterable[tuple[str, dt.datetime]],
    gone: Iterable[str] = (),
) -> None:
    """The profile projector's part, in its transaction: members whose last activity moved
    (`(member_id, last_activity_at)`) get their due moments recomputed (a row per registered
    inactivity journey); erased or merged-away members (`gone`) lose their rows."""
    pairs = sorted(active)
    if pairs:
        await conn.execute(
            """
            INSERT INTO inactivity_due AS d (journey, member_id, last_activity_at, due_at)
            SELECT r.journey, x.member_id, x.last, x.last + r.inactive_days * interval '1 day'
            FROM unnest($1::text[], $2::timestamptz[]) AS x(member_id, last)
            CROSS JOIN inactivity_journeys r
            ON CONFLICT (journey, member_id) DO UPDATE SET
                last_activity_at = excluded.last_activity_at,
                due_at = CASE WHEN d.blocked_until = 'infinity'::timestamptz THEN NULL
                              ELSE greatest(excluded.due_at, d.blocked_until) END
            WHERE d.last_activity_at IS DISTINCT FROM excluded.last_activity_at
            """,
            [m for m, _ in pairs],
            [t for _, t in pairs],
        )
    gone_ids = sorted(gone)
    if gone_ids:
        await conn.execute("DELETE FROM inactivity_due WHERE member_id = ANY($1::text[])", gone_ids)


_ENDED_DUE = _DUE.format(blocked="b.blocked", last="d.last_activity_at", days="b.inactive_days")


async def run_ended(conn: Conn, journey: str, member_id: str, exited_at: dt.datetime) -> None:
    """A run of `journey` for the member ended at `exited_at`: its re-entry rule decides
    when (if ever) the member may be due again."""
    await conn.execute(
        f"""
        WITH b AS (
            SELECT r.inactive_days, CASE r.reentry
                WHEN 'always' THEN NULL::timestamptz
                WHEN 'never' THEN 'infinity'::timestamptz
                ELSE $3::timestamptz + coalesce(r.cooldown, interval '0') END AS blocked
            FROM inactivity_journeys r WHERE r.journey = $1)
        UPDATE inactivity_due d SET blocked_until = b.blocked, due_at = {_ENDED_DUE}
        FROM b WHERE d.journey = $1 AND d.member_id = $2
        """,
        journey,
        member_id,
        exited_at,
    )


CLAIM_SQL = """
        WITH c AS MATERIALIZED (
            SELECT member_id FROM inactivity_due
            WHERE journey = $1 AND due_at IS NOT NULL AND due_at <= $2
            ORDER BY due_at, member_id LIMIT $4 FOR UPDATE SKIP LOCKED)
        UPDATE inactivity_due d SET due_at = $3
        WHERE d.journey = $1 AND d.member_id = ANY(ARRAY(SELECT member_id FROM c))
        RETURNING d.member_id
        """
"""Parameters: journey, now, lease end, page size. Reads the due rows by the partial index
and updates them by primary key (never a scan of the table)."""


async def claim_due(
    conn: Conn, journey: str, now: dt.datetime, lease_until: dt.datetime, limit: int
) -> list[str]:
    """Take up to `limit` members due for `journey` at `now`, soonest first, by the partial
    index: their `due_at` moves to `lease_until`, so an overlapping scan skips them (rows
    another scan is claiming are skipped too), and a scan that dies before starting their
    runs leaves them due again when the lease ends."""
    rows = await conn.fetch(CLAIM_SQL, journey, now, lease_until, limit)
    return sorted(r["member_id"] for r in rows)


async def mark_claimed_started(
    conn: Conn, journey: str, member_ids: list[str], lease_until: dt.datetime
) -> None:
    """Runs were started (or found open, or refused by Temporal's reuse rule) for these
    claimed members: block them until the run ends. A row whose run already ended, or whose
    member was active, meanwhile no longer holds this claim's lease and is left as it is."""
    await conn.execute(
        "UPDATE inactivity_due SET blocked_until = 'infinity', due_at = NULL "
        "WHERE journey = $1 AND member_id = ANY($2::text[]) AND due_at = $3",
        journey,
        member_ids,
        lease_until,
    )
