"""When each member becomes due for each inactivity journey (`inactivity_due`), so the scan
reads only who is due, by the partial index on `due_at`, never every profile.

A row per (journey, member) holds the member's last activity, `blocked_until` (a run is
open or the re-entry rule forbids one until then; 'infinity' for running or never again)
and `due_at = greatest(last_activity_at + inactive_days, blocked_until)`, NULL when never.
It is kept current by:

* the profile projector (`track_activity`), in the transaction of the profile write, when a
  member's last activity changes, or the member is erased or merged away;
* the scan (`due_page` / `mark_started`), which reads due rows under a per-journey scan
  lock and blocks them once their runs are started;
* the end of a run (`after_runs_ended`, part of the statements of `journey_instances`' exit
  and "gone" folds),
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

# A recomputation holds the profile projector's lock, so no profile batch interleaves.
from journeyman.engine.core.readers import PROFILES_LOCK

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

    async def stored() -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT inactive_days, reentry, cooldown, workflow_prefix FROM inactivity_journeys "
            "WHERE journey = $1",
            j.journey,
        )

    def same(row: asyncpg.Record | None) -> bool:
        return row is not None and (
            row["inactive_days"] == j.inactive_days
            and row["reentry"] == j.reentry
            and row["cooldown"] == j.cooldown
            and row["workflow_prefix"] == j.workflow_prefix
        )

    if same(await stored()):
        return "same"
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PROFILES_LOCK)
    row = await stored()
    if same(row):  # another scan recomputed it while this one waited for the lock
        return "same"
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
    inactivity journey); erased or merged-away members (`gone`) lose their rows.

    Last activity only moves forward (profiles keep the latest), so an older value — a
    profile rebuild replaying the store from the start — changes nothing: a half-replayed
    profile never makes a member due."""
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
            WHERE d.last_activity_at < excluded.last_activity_at
            """,
            [m for m, _ in pairs],
            [t for _, t in pairs],
        )
    gone_ids = sorted(gone)
    if gone_ids:
        await conn.execute("DELETE FROM inactivity_due WHERE member_id = ANY($1::text[])", gone_ids)


_ENDED_DUE = _DUE.format(blocked="b.blocked", last="d.last_activity_at", days="b.inactive_days")


def after_runs_ended(ended: str) -> str:
    """Common table expressions, for a statement that ends runs, that move the due moments
    of their members by each journey's re-entry rule. `ended` names an earlier expression
    (or table) with `journey`, `member_id` and `exited_at` columns; data-modifying
    expressions run whether or not the statement's result reads them."""
    return f"""
        ended_rule AS (
            SELECT e.journey, e.member_id, r.inactive_days, CASE r.reentry
                WHEN 'always' THEN NULL::timestamptz
                WHEN 'never' THEN 'infinity'::timestamptz
                ELSE e.exited_at + coalesce(r.cooldown, interval '0') END AS blocked
            FROM {ended} e JOIN inactivity_journeys r ON r.journey = e.journey
        ), ended_due AS (
            UPDATE inactivity_due d SET blocked_until = b.blocked, due_at = {_ENDED_DUE}
            FROM ended_rule b WHERE d.journey = b.journey AND d.member_id = b.member_id
        )"""


SCAN_LOCK = 0x4A4D5343  # "JMSC"; with hashtext(journey): one scan per journey at a time

DUE_PAGE_SQL = """
SELECT member_id, due_at FROM inactivity_due
WHERE journey = $1 AND due_at IS NOT NULL AND due_at <= $2 AND (due_at, member_id) > ($3, $4)
ORDER BY due_at, member_id LIMIT $5
"""
"""Parameters: journey, now, cursor (due_at, member_id), page size. Reads due rows by the
partial index on (journey, due_at, member_id), starting at the cursor (the row comparison is
an index condition), so the entries of rows already handled are never walked over again,
even when many members share one due moment."""

MARK_SQL = """
UPDATE inactivity_due d SET blocked_until = 'infinity', due_at = NULL
FROM unnest($2::text[], $3::timestamptz[]) AS x(member_id, due_at)
WHERE d.journey = $1 AND d.member_id = ANY($2::text[])
  AND d.member_id = x.member_id AND d.due_at = x.due_at
"""
"""Parameters: journey, member ids, the due moments the page read."""


@dataclass(frozen=True)
class Due:
    member_id: str
    due_at: dt.datetime


async def try_lock_scan(conn: asyncpg.Connection, journey: str) -> bool:
    """Take the journey's scan lock on `conn` (a session lock: released by `unlock_scan`, or
    by PostgreSQL when the connection ends), or say that another scan holds it."""
    return bool(
        await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", SCAN_LOCK, journey)
    )


async def unlock_scan(conn: asyncpg.Connection, journey: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", SCAN_LOCK, journey)


async def due_page(
    conn: Conn, journey: str, now: dt.datetime, after: Due | None, limit: int
) -> list[Due]:
    """Up to `limit` members due for `journey` at `now`, soonest first, after `after`."""
    cursor = after or Due("", dt.datetime.min.replace(tzinfo=dt.UTC))
    rows = await conn.fetch(DUE_PAGE_SQL, journey, now, cursor.due_at, cursor.member_id, limit)
    return [Due(r["member_id"], r["due_at"]) for r in rows]


async def mark_started(conn: Conn, journey: str, page: list[Due]) -> None:
    """Runs were started (or found open, or refused by Temporal's reuse rule) for this page:
    block its rows until the run ends. A row whose due moment moved since the page was read
    (its run already ended, or the member was active) is left as it is."""
    await conn.execute(MARK_SQL, journey, [d.member_id for d in page], [d.due_at for d in page])
