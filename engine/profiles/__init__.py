"""Member profiles: the `member_profiles` projection and how to read it.

`get_profile(pool_or_conn, member_id)` returns the `MemberProfile` other areas read
(following merges to the surviving member); its lifecycle stage and RFM scores are computed
as of the moment of reading. `ProfileProjector` keeps the table up to date.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.core.settings import Settings, get_settings

from .fold import ProfileRow, scores
from .projector import NAME, ProfileProjector

__all__ = ["NAME", "MemberProfile", "ProfileProjector", "ProfileRow", "get_profile"]


async def get_profile(
    pool_or_conn: asyncpg.Pool | asyncpg.Connection,
    member_id: str,
    *,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> MemberProfile | None:
    """The profile of `member_id` (or of the member it was merged into), None if unknown."""
    for _ in range(16):
        record = await pool_or_conn.fetchrow(
            "SELECT * FROM member_profiles WHERE member_id = $1", member_id
        )
        if record is None:
            return None
        row = ProfileRow.from_record(record)
        if row.merged_into is None:
            break
        member_id = row.merged_into
    scores(row, now or dt.datetime.now(dt.UTC), settings or get_settings())
    return MemberProfile(
        member_id=row.member_id,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        last_activity_at=row.last_activity_at,
        last_order_at=row.last_order_at,
        order_count=row.order_count,
        monetary_value=row.monetary_value,
        recency_score=row.recency_score,
        frequency_score=row.frequency_score,
        monetary_score=row.monetary_score,
        lifecycle_stage=row.lifecycle_stage,  # type: ignore[arg-type]
        consent=row.consent,
        timezone=row.timezone,
        locale=row.locale,
        suppressed=row.suppressed,
        traits=row.traits,
        erased=row.erased,
    )
