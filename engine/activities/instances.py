"""The `journey_instances` projection: which journey runs each member is in.

The dispatcher reads it to skip members with nothing running (a page view of a member who
is in no journey never becomes Temporal traffic) and to apply re-entry rules. It is folded
from `journey.entered` / `journey.exited` events, and also written *before* those events
exist by whoever starts a run (dispatcher, inactivity scan) as a `pending` row, so that an
event following a trigger closely is never routed past a run that has just begun.

A stale "running" row costs one no-op signal ("not found", which clears it); a stale
"not running" row would lose events, so every ambiguity resolves toward running.

The dispatcher reads it once per batch (`load_views`: the running rows of every member in
the batch and the rows its triggers name, in one statement) and keeps that view current
from what its own writes return, so routing costs no look-up per event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from journeyman.engine.profiles import inactivity_due
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle

metadata = MetaData()

journey_instances = Table(
    "journey_instances",
    metadata,
    Column("workflow_id", Text, primary_key=True),
    Column("journey", Text, nullable=False),
    Column("member_id", Text, nullable=False),
    Column("key", Text),
    Column("running", Boolean, nullable=False, server_default=text("false")),
    Column("pending", Boolean, nullable=False, server_default=text("false")),
    Column("entry_id", Text),
    Column("entries", Integer, nullable=False, server_default=text("0")),
    Column("variant", Text),
    Column("holdout", Boolean),
    Column("entered_at", DateTime(timezone=True)),
    Column("exited_at", DateTime(timezone=True)),
    Column("exit_reason", Text),
    Column("converted", Boolean, nullable=False, server_default=text("false")),
    Column("last_trigger_version", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("journey_instances_member_idx", "member_id", "journey"),
)


@dataclass(frozen=True)
class Instance:
    workflow_id: str
    journey: str
    member_id: str
    key: str | None
    running: bool
    pending: bool
    entry_id: str | None
    entries: int
    exited_at: dt.datetime | None
    last_trigger_version: int | None = None


def _instance(row: asyncpg.Record) -> Instance:
    return Instance(
        workflow_id=row["workflow_id"],
        journey=row["journey"],
        member_id=row["member_id"],
        key=row["key"],
        running=row["running"],
        pending=row["pending"],
        entry_id=row["entry_id"],
        entries=row["entries"],
        exited_at=row["exited_at"],
        last_trigger_version=row["last_trigger_version"],
    )


_COLS = (
    "workflow_id, journey, member_id, key, running, pending, entry_id, entries, exited_at, "
    "last_trigger_version"
)


class Queries(Protocol):
    """What these functions need of a connection, a pool or a wrapper around either."""

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: object) -> object: ...
    async def execute(self, query: str, *args: object) -> str: ...


@dataclass
class MemberView:
    """What the dispatcher knows of one member's runs while it routes a batch: the running
    rows, the rows its triggers name, and which triggers a run has already entered with."""

    rows: dict[str, Instance] = field(default_factory=dict)
    entered: set[tuple[str, str]] = field(default_factory=set)  # (journey, trigger event id)

    def running(self, journey: str) -> list[Instance]:
        found = [r for r in self.rows.values() if r.journey == journey and r.running]
        return sorted(found, key=lambda r: r.workflow_id)

    def keep(self, row: Instance | None) -> None:
        if row is not None:
            self.rows[row.workflow_id] = row


async def load_views(
    conn: Queries,
    member_ids: Sequence[str],
    workflow_ids: Sequence[str],
    triggers: Sequence[tuple[str, str]],
) -> dict[str, MemberView]:
    """One statement for a whole batch: the running rows of `member_ids`, the rows named by
    `workflow_ids` (running or not: re-entry and replay need them), and which of
    `triggers` — (member id, trigger event id) — some run already recorded
    `journey.entered` for (a run's first act; covers a dispatcher that died after Temporal
    accepted a start and before the row was written)."""
    views: dict[str, MemberView] = {m: MemberView() for m in member_ids}
    if not member_ids and not workflow_ids:
        return views
    streams = sorted({f"member-{m}" for m, _ in triggers})
    trigger_ids = sorted({t for _, t in triggers})
    rows = await conn.fetch(
        f"""
        SELECT {_COLS}, NULL::text AS trigger FROM journey_instances
        WHERE (member_id = ANY($1::text[]) AND running) OR workflow_id = ANY($2::text[])
        UNION ALL
        SELECT NULL, data->>'journey', substr(stream_id, {len("member-") + 1}), NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, data->>'trigger'
        FROM events
        WHERE stream_id = ANY($3::text[]) AND type = 'journey.entered'
          AND data->>'trigger' = ANY($4::text[])
        """,
        list(member_ids),
        list(workflow_ids),
        streams,
        trigger_ids,
    )
    for r in rows:
        view = views.setdefault(r["member_id"], MemberView())
        if r["trigger"] is not None:
            view.entered.add((r["journey"], r["trigger"]))
        else:
            view.keep(_instance(r))
    return views


async def get_instance(
    conn: asyncpg.Connection | asyncpg.Pool, workflow_id: str
) -> Instance | None:
    row = await conn.fetchrow(
        f"SELECT {_COLS} FROM journey_instances WHERE workflow_id = $1", workflow_id
    )
    return None if row is None else _instance(row)


async def running_instances(
    conn: asyncpg.Connection | asyncpg.Pool, member_id: str, journey: str
) -> list[Instance]:
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM journey_instances "
        "WHERE member_id = $1 AND journey = $2 AND running ORDER BY workflow_id",
        member_id,
        journey,
    )
    return [_instance(r) for r in rows]


async def mark_started(
    conn: Queries,
    *,
    workflow_id: str,
    journey: str,
    member_id: str,
    key: str | None,
    entry_id: str | None,
    new_run: bool,
    trigger_version: int | None = None,
) -> tuple[Instance, bool]:
    """Whoever starts (or signals-with-start) a run records it at once.

    `entry_id` is the run's entry (its first execution run id, which Temporal returns for a
    start and for a signal-with-start alike); with `new_run` it is counted as an entry if the
    row did not name it yet. Without it the row is `pending` until the run's
    `journey.entered` arrives. `trigger_version` notes the trigger handed over (see
    `note_trigger`) in the same statement. Returns the row and whether the entry is new.
    """
    row = await conn.fetchrow(
        f"""
        WITH before AS (SELECT entry_id FROM journey_instances WHERE workflow_id = $1)
        INSERT INTO journey_instances
            (workflow_id, journey, member_id, key, running, pending, entry_id, entries, entered_at,
             last_trigger_version)
        VALUES ($1, $2, $3, $4::text, true, $5::text IS NULL, $5::text,
                CASE WHEN $6::boolean THEN 1 ELSE 0 END, now(), $7::bigint)
        ON CONFLICT (workflow_id) DO UPDATE SET
            running = true,
            pending = CASE WHEN $5 IS NULL THEN journey_instances.pending ELSE false END,
            entry_id = coalesce($5, journey_instances.entry_id),
            entries = journey_instances.entries
                + CASE WHEN $6 AND $5 IS DISTINCT FROM journey_instances.entry_id THEN 1 ELSE 0 END,
            entered_at = CASE WHEN $6 AND $5 IS DISTINCT FROM journey_instances.entry_id
                              THEN now() ELSE journey_instances.entered_at END,
            last_trigger_version = CASE WHEN $7 IS NULL THEN journey_instances.last_trigger_version
                ELSE greatest(coalesce(journey_instances.last_trigger_version, -1), $7) END,
            updated_at = now()
        RETURNING {_COLS},
            ($6 AND $5 IS NOT NULL
             AND $5 IS DISTINCT FROM (SELECT entry_id FROM before)) AS new_entry
        """,
        workflow_id,
        journey,
        member_id,
        key,
        entry_id,
        new_run,
        trigger_version,
    )
    assert row is not None
    return _instance(row), bool(row["new_entry"])


@dataclass(frozen=True)
class Started:
    """One start call's outcome, for `mark_started_many`."""

    workflow_id: str
    member_id: str
    entry_id: str | None
    new_run: bool


async def mark_started_many(
    conn: asyncpg.Connection | asyncpg.Pool, journey: str, started: list[Started]
) -> int:
    """`mark_started` for a batch of unkeyed runs of one journey, in one statement; how many
    entries were new to their rows. A row whose run was already seen to end (its
    `journey.exited` folded for this very entry before the batch was marked) stays ended."""
    if not started:
        return 0
    return int(
        await conn.fetchval(
            """
            WITH before AS (
                SELECT workflow_id, entry_id FROM journey_instances
                WHERE workflow_id = ANY($2::text[])
            ), marked AS (
                INSERT INTO journey_instances AS j
                    (workflow_id, journey, member_id, key, running, pending, entry_id, entries,
                     entered_at)
                SELECT x.workflow_id, $1, x.member_id, NULL, true, x.entry_id IS NULL,
                       x.entry_id, CASE WHEN x.new_run THEN 1 ELSE 0 END, now()
                FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[])
                     AS x(workflow_id, member_id, entry_id, new_run)
                ON CONFLICT (workflow_id) DO UPDATE SET
                    running = CASE WHEN excluded.entry_id IS NOT NULL
                                    AND j.entry_id = excluded.entry_id
                                    AND NOT j.pending AND NOT j.running
                                    AND j.exited_at IS NOT NULL
                                   THEN false ELSE true END,
                    pending = CASE WHEN excluded.entry_id IS NULL THEN j.pending ELSE false END,
                    entry_id = coalesce(excluded.entry_id, j.entry_id),
                    entries = j.entries
                        + CASE WHEN excluded.entries = 1
                                AND excluded.entry_id IS DISTINCT FROM j.entry_id
                               THEN 1 ELSE 0 END,
                    entered_at = CASE WHEN excluded.entries = 1
                                       AND excluded.entry_id IS DISTINCT FROM j.entry_id
                                      THEN now() ELSE j.entered_at END,
                    updated_at = now()
                RETURNING j.workflow_id, j.entry_id
            )
            SELECT count(*) FROM marked m LEFT JOIN before b USING (workflow_id)
            WHERE m.entry_id IS NOT NULL AND m.entry_id IS DISTINCT FROM b.entry_id
            """,
            journey,
            [s.workflow_id for s in started],
            [s.member_id for s in started],
            [s.entry_id for s in started],
            [s.new_run for s in started],
        )
    )


async def fold_entered(
    conn: Queries,
    *,
    workflow_id: str,
    journey: str,
    member_id: str,
    key: str | None,
    entry_id: str,
    variant: str | None,
    holdout: bool | None,
    at: dt.datetime,
) -> Instance | None:
    row = await conn.fetchrow(
        f"""
        INSERT INTO journey_instances (workflow_id, journey, member_id, key, running, pending,
            entry_id, entries, variant, holdout, entered_at)
        VALUES ($1, $2, $3, $4::text, true, false, $5::text, 1, $6::text, $7::boolean,
                $8::timestamptz)
        ON CONFLICT (workflow_id) DO UPDATE SET
            entries = journey_instances.entries
                + CASE WHEN journey_instances.entry_id IS DISTINCT FROM $5
                        AND journey_instances.pending IS NOT TRUE THEN 1 ELSE 0 END,
            running = CASE WHEN journey_instances.entry_id = $5
                           AND journey_instances.exited_at >= $8 THEN journey_instances.running
                           ELSE true END,
            pending = false,
            entry_id = $5,
            variant = $6,
            holdout = $7,
            entered_at = $8,
            updated_at = now()
        RETURNING {_COLS}
        """,
        workflow_id,
        journey,
        member_id,
        key,
        entry_id,
        variant,
        holdout,
        at,
    )
    return None if row is None else _instance(row)


async def fold_exited(
    conn: Queries,
    *,
    workflow_id: str,
    entry_id: str,
    reason: str,
    converted: bool,
    at: dt.datetime,
) -> Instance | None:
    """An exit ends the row only if it is the row's current, confirmed entry. For an
    inactivity journey, the member's due moment follows the re-entry rule (in the same
    statement)."""
    row = await conn.fetchrow(
        f"""
        WITH ended AS (
            UPDATE journey_instances SET running = false, exited_at = $3, exit_reason = $4,
                converted = $5, updated_at = now()
            WHERE workflow_id = $1 AND entry_id = $2 AND NOT pending
            RETURNING {_COLS}
        ), {inactivity_due.after_runs_ended("ended")}
        SELECT * FROM ended
        """,
        workflow_id,
        entry_id,
        at,
        reason,
        converted,
    )
    return None if row is None else _instance(row)


async def note_trigger(conn: Queries, workflow_id: str, stream_version: int) -> Instance | None:
    """Remember that the trigger at `stream_version` of the member's stream reached the run.

    Triggers are compared by stream version (not global position): within one member's
    stream the version is the order readers see."""
    row = await conn.fetchrow(
        "UPDATE journey_instances SET last_trigger_version = "
        "greatest(coalesce(last_trigger_version, -1), $2), updated_at = now() "
        f"WHERE workflow_id = $1 RETURNING {_COLS}",
        workflow_id,
        stream_version,
    )
    return None if row is None else _instance(row)


async def trigger_entered(
    conn: asyncpg.Connection | asyncpg.Pool, journey: str, member_id: str, trigger_event_id: str
) -> bool:
    """Whether a run of `journey` already recorded `journey.entered` for this trigger.

    Covers a dispatcher that died after Temporal accepted the start but before it noted the
    trigger: the run's first act is to record its trigger in the member's stream."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1 "
            "AND type = 'journey.entered' AND data->>'trigger' = $2 AND data->>'journey' = $3)",
            f"member-{member_id}",
            trigger_event_id,
            journey,
        )
    )


async def mark_gone(conn: Queries, workflow_id: str) -> Instance | None:
    """Temporal says no run is open under this id: the row is stale."""
    row = await conn.fetchrow(
        f"""
        WITH ended AS (
            UPDATE journey_instances SET running = false, pending = false,
                exited_at = coalesce(exited_at, now()), updated_at = now()
            WHERE workflow_id = $1
            RETURNING {_COLS}
        ), {inactivity_due.after_runs_ended("ended")}
        SELECT * FROM ended
        """,
        workflow_id,
    )
    return None if row is None else _instance(row)


def entry_of(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The entry a start or signal-with-start reached: the first execution run id of the
    run it started or found (Temporal server 1.32 or later returns it in both cases; an
    older server leaves it unset when a signal-with-start found a running run)."""
    return handle.first_execution_run_id
