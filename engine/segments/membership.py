"""Segment membership: who is in which segment, and the events that say when that changed.

`segment_memberships` is the source of truth of who is in. `apply_profiles` brings the
memberships of some members in line with their profiles, inside the caller's transaction:
a member who newly matches a segment gets a row and a `segment.entered` event
(`{"segment": name}`) on `member-<id>`; one who no longer matches loses the row and gets
`segment.exited`. Row and event are stored together or not at all, so an evaluation that
is repeated (a redelivered batch, a retried refresh) finds nothing left to change and appends
nothing. The row write decides, not the earlier read: of two evaluations racing over the same
member, only the one whose insert or delete takes effect appends the event. Event ids are
deterministic (`segment.entered/<segment>/<stream version>/<member>`): the stream version
before the append differs for every change of a member's membership, and is the same when an
identical change is tried again.

Two callers evaluate segments:

* the profile projector, through `SegmentTracker.after_batch`, for the members a batch of
  events changed, in the transaction that also moves the projection's checkpoint;
* the hourly scan, because recency scores and lifecycle stages change with time alone:
  `journeyman.engine.profiles.segment_refresh.refresh_due` evaluates only the members whose
  time-based fields can have changed (by the index on `segment_due.due_at`); `refresh` pages
  through every profile (after a change of the score settings or of the registered segments).

A profile rebuild replays every event into empty profiles. The tracker remembers how far the
projection had evaluated segments (the checkpoint `member_profiles.segments`) and evaluates
nothing while a replay is behind that point: half-replayed profiles never make members leave
and re-enter. Once the replay passes it, profiles are as current as before and only real
changes append events.

Only registered segments are evaluated. Rows of a segment no loaded plugin registers are
left as they are (uninstalling a plugin does not make everyone leave its segments).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.event_store import (
    ANY,
    START,
    Cursor,
    NewEvent,
    PostgresEventStore,
    StaleTransactionError,
)

from .model import Segment

if TYPE_CHECKING:
    from journeyman.engine.profiles.fold import ProfileRow

log = logging.getLogger(__name__)

ENTERED = "segment.entered"
EXITED = "segment.exited"
MARK = "member_profiles.segments"
"""Checkpoint name: the last event of a profile batch whose members' segments were evaluated."""

Segments = Mapping[str, Segment] | Iterable[Segment]


def segment_list(segments: Segments) -> list[Segment]:
    """Segments in name order, from a mapping by name or any iterable."""
    values = segments.values() if isinstance(segments, Mapping) else segments
    return sorted(values, key=lambda s: s.name)


def member_stream(member_id: str) -> str:
    return f"member-{member_id}"


@dataclass
class SegmentChanges:
    """What one evaluation changed. Pairs are (segment, member id)."""

    entered: list[tuple[str, str]] = field(default_factory=list)
    exited: list[tuple[str, str]] = field(default_factory=list)
    deferred: set[str] = field(default_factory=set)
    """Members whose stream a newer transaction appended to meanwhile: nothing was changed
    for them here. The projector evaluates them again when it folds that newer event."""
    failed: int = 0
    """(member, segment) tests that raised: that membership was left as it was."""

    def add(self, other: SegmentChanges) -> None:
        self.entered += other.entered
        self.exited += other.exited
        self.deferred |= other.deferred
        self.failed += other.failed


def profile_of(row: ProfileRow) -> MemberProfile | None:
    """The profile a segment test sees (as `get_profile` shows it, given a row whose scores
    are current), or None for a member who belongs to no segment (merged or erased)."""
    if row.merged_into is not None or row.erased:
        return None
    return MemberProfile.model_validate(
        {name: getattr(row, name) for name in MemberProfile.model_fields}
    )


def _wanted(
    segments: Sequence[Segment], profiles: Mapping[str, MemberProfile | None]
) -> tuple[dict[str, set[str]], set[tuple[str, str]], int]:
    """For each member, the segments they match; the (segment, member) pairs whose test
    raised; how many raised."""
    wanted: dict[str, set[str]] = {}
    broken: set[tuple[str, str]] = set()
    first_error: dict[str, BaseException] = {}
    for member_id, profile in profiles.items():
        found: set[str] = set()
        if profile is not None:
            for segment in segments:
                try:
                    if segment.matches(profile):
                        found.add(segment.name)
                except Exception as exc:
                    broken.add((segment.name, member_id))
                    first_error.setdefault(segment.name, exc)
        wanted[member_id] = found
    for name, exc in first_error.items():
        count = sum(1 for s, _ in broken if s == name)
        log.warning(
            "segment %r: its test raised for %d member(s) (first: %s: %s); their membership "
            "is left as it was",
            name,
            count,
            type(exc).__name__,
            exc,
        )
    return wanted, broken, len(broken)


async def apply_profiles(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    segments: Sequence[Segment],
    profiles: Mapping[str, MemberProfile | None],
    *,
    now: dt.datetime,
) -> SegmentChanges:
    """Bring the memberships of `profiles`' members (None: merged or erased, in no segment)
    in line with `segments`, in `conn`'s transaction (see the module docstring)."""
    changes = SegmentChanges()
    if not segments or not profiles:
        return changes
    wanted, broken, changes.failed = _wanted(segments, profiles)
    current = {
        (r["segment"], r["member_id"])
        for r in await conn.fetch(
            "SELECT segment, member_id FROM segment_memberships "
            "WHERE member_id = ANY($1::text[]) AND segment = ANY($2::text[])",
            list(profiles),
            [s.name for s in segments],
        )
    }
    enters = sorted((s, m) for m, names in wanted.items() for s in names if (s, m) not in current)
    exits = sorted(
        (s, m) for s, m in current if s not in wanted.get(m, ()) and (s, m) not in broken
    )
    while enters or exits:
        try:
            async with conn.transaction():  # a savepoint: a stale member is dropped, not all
                entered, exited = await _write(conn, store, enters, exits, now)
        except StaleTransactionError as exc:
            member_id = exc.stream_id.removeprefix("member-")
            changes.deferred.add(member_id)
            enters = [(s, m) for s, m in enters if m != member_id]
            exits = [(s, m) for s, m in exits if m != member_id]
            continue
        changes.entered, changes.exited = entered, exited
        break
    return changes


async def _write(
    conn: asyncpg.Connection,
    store: PostgresEventStore,
    enters: list[tuple[str, str]],
    exits: list[tuple[str, str]],
    now: dt.datetime,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    entered: list[tuple[str, str]] = []
    exited: list[tuple[str, str]] = []
    if enters:
        rows = await conn.fetch(
            "INSERT INTO segment_memberships (segment, member_id, entered_at) "
            "SELECT x.segment, x.member_id, $3 FROM unnest($1::text[], $2::text[]) "
            "AS x(segment, member_id) ON CONFLICT DO NOTHING RETURNING segment, member_id",
            [s for s, _ in enters],
            [m for _, m in enters],
            now,
        )
        entered = sorted((r["segment"], r["member_id"]) for r in rows)
    if exits:
        rows = await conn.fetch(
            "DELETE FROM segment_memberships d USING unnest($1::text[], $2::text[]) "
            "AS x(segment, member_id) WHERE d.segment = x.segment AND d.member_id = x.member_id "
            "RETURNING d.segment, d.member_id",
            [s for s, _ in exits],
            [m for _, m in exits],
        )
        exited = sorted((r["segment"], r["member_id"]) for r in rows)
    members = sorted({m for _, m in entered} | {m for _, m in exited})
    if not members:
        return entered, exited
    versions = {
        r["stream_id"]: r["version"]
        for r in await conn.fetch(
            "SELECT s.stream_id, coalesce((SELECT max(e.stream_version) FROM events e "
            "WHERE e.stream_id = s.stream_id), -1) AS version "
            "FROM unnest($1::text[]) AS s(stream_id)",
            [member_stream(m) for m in members],
        )
    }
    by_member: dict[str, list[NewEvent]] = {m: [] for m in members}
    # A member's exits come before their entries (moving from one segment to another).
    for type_, pairs in ((EXITED, exited), (ENTERED, entered)):
        for segment, member_id in pairs:
            version = versions[member_stream(member_id)]
            by_member[member_id].append(
                NewEvent(
                    type_,
                    {"segment": segment},
                    {"source": "segments"},
                    event_id=f"{type_}/{segment}/{version}/{member_id}",
                    occurred_at=now,
                )
            )
    await store.append_batch(
        [(member_stream(m), events, ANY) for m, events in by_member.items()], conn=conn
    )
    return entered, exited


class SegmentTracker:
    """The profile projector's side of segments: after a batch is folded, evaluate the
    members it changed (in the batch's transaction). With `segments=None`, the segments
    every loaded plugin registers (looked up once, on first use)."""

    def __init__(self, store: PostgresEventStore, segments: Segments | None = None) -> None:
        self.store = store
        self._segments = None if segments is None else segment_list(segments)

    @property
    def segments(self) -> list[Segment]:
        if self._segments is None:
            from . import registered_segments

            self._segments = segment_list(registered_segments())
        return self._segments

    async def after_batch(
        self,
        conn: asyncpg.Connection,
        rows: Iterable[ProfileRow],
        upto: Cursor | None,
        now: dt.datetime,
    ) -> SegmentChanges | None:
        """Evaluate `rows` (folded, scores as of `now`) unless the batch ending at `upto`
        was evaluated before (a replay); None when nothing was evaluated. `upto=None`: an
        event handled out of order (a retried dead letter), always evaluated."""
        if not self.segments:
            return None
        if upto is not None and upto <= await _mark(conn):
            return None
        changes = await apply_profiles(
            conn, self.store, self.segments, {r.member_id: profile_of(r) for r in rows}, now=now
        )
        if upto is not None:
            await self.store.save_checkpoint(MARK, upto, conn=conn)
        return changes


async def _mark(conn: asyncpg.Connection, name: str = MARK) -> Cursor:
    row = await conn.fetchrow(
        "SELECT tx_id, position FROM subscription_checkpoints "
        "WHERE name = $1 AND partition = 0 AND partitions = 1",
        name,
    )
    return START if row is None else Cursor(row["tx_id"], row["position"])


@dataclass
class RefreshResult:
    examined: int = 0
    pages: int = 0
    changes: SegmentChanges = field(default_factory=SegmentChanges)
    behind: bool = False
    """The profile projection was replaying (a rebuild): the refresh stopped, changing
    nothing, rather than judge half-replayed profiles."""
    cursor: str | None = None
    """The last member id examined: `refresh(after=...)` resumes after it."""
