"""`GET /v1/members/{id}` (profile) and `GET /v1/members/{id}/events` (timeline, paged).

The timeline shows events with their sealed personal properties opened under the member's
data key; once the member is erased, those properties are absent (sealed fields are null).
An event the store cannot read back is listed under `undecodable`, not an error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.identity.crypto import load_data_keys
from journeyman.engine.identity.sealing import has_sealed, open_fields
from journeyman.engine.ingest.models import ID_PATTERN
from journeyman.engine.profiles import get_profile
from journeyman.event_store import UndecodableEvent
from pydantic import BaseModel, Field

from .auth import require
from .errors import READ_ERRORS, ApiError, ErrorBody

router = APIRouter()
MemberPath = Path(
    min_length=1,
    max_length=128,
    pattern=ID_PATTERN,
    description="The member's id in your system (`member.id`, Segment's `userId`) or the "
    "store's own member id (`member_id` in ingest results).",
)


async def survivor_of(request: Request, member_id: str) -> str:
    """The store's id of the member a path names (client user id or store id), after merges."""
    keyring = request.app.state.ingestor.keyring
    return await resolve_member_id(request.app.state.store.pool, member_id, keyring)


class TimelineEvent(BaseModel):
    global_position: int
    stream_version: int
    event_id: str
    type: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    data: dict[str, Any]
    metadata: dict[str, Any]


class UndecodableTimelineEvent(BaseModel):
    """A stored event that cannot be read back (e.g. a timestamp before year 1): its place,
    the error, and its columns as the database prints them."""

    global_position: int
    stream_version: int
    event_id: str
    type: str
    error: str
    raw: dict[str, str | None]


class Timeline(BaseModel):
    member_id: str = Field(description="The surviving member id (after merges).")
    events: list[TimelineEvent]
    undecodable: list[UndecodableTimelineEvent] = Field(
        default=[], description="Events of this page that cannot be read back."
    )
    next_after: int | None = Field(
        description="Pass as `after` to get the next page; null on the last page."
    )


NOT_FOUND = {404: {"model": ErrorBody, "description": "No such member."}}


@router.get(
    "/v1/members/{member_id}",
    summary="A member's profile",
    response_model=MemberProfile,
    responses={**READ_ERRORS, **NOT_FOUND},
)
async def member_profile(
    request: Request,
    member_id: str = MemberPath,
    _key: ApiKey = Depends(require("read")),
) -> MemberProfile:
    profile = await get_profile(
        request.app.state.store.pool,
        await survivor_of(request, member_id),
        settings=request.app.state.settings,
    )
    if profile is None:
        raise ApiError(404, "not_found", f"member {member_id} has no profile (yet)")
    return profile


@router.get(
    "/v1/members/{member_id}/events",
    summary="A member's events, oldest first",
    response_model=Timeline,
    responses={**READ_ERRORS, **NOT_FOUND},
)
async def member_events(
    request: Request,
    member_id: str = MemberPath,
    after: int = Query(-1, ge=-1, le=2**62, description="Stream version to start after."),
    limit: int = Query(100, ge=1, le=1000),
    _key: ApiKey = Depends(require("read")),
) -> Timeline:
    store = request.app.state.store
    survivor = await survivor_of(request, member_id)
    bad: list[UndecodableEvent] = []
    events = await store.read_stream(
        f"member-{survivor}", after + 1, limit=limit + 1, undecodable=bad
    )
    if not events and not bad and after == -1:
        raise ApiError(404, "not_found", f"member {member_id} has no events")
    versions = sorted([e.stream_version for e in events] + [b.stream_version for b in bad])
    more = len(versions) > limit
    last = versions[limit - 1] if more else None
    page = [e for e in events if last is None or e.stream_version <= last]
    key = None
    if any(has_sealed(e.data) for e in page):
        keyring = request.app.state.ingestor.keyring
        key = (await load_data_keys(store.pool, keyring, [survivor])).get(survivor)
    return Timeline(
        member_id=survivor,
        events=[
            TimelineEvent(
                global_position=e.global_position,
                stream_version=e.stream_version,
                event_id=e.event_id,
                type=e.type,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                data=open_fields(e.data, key, e.event_id) if has_sealed(e.data) else e.data,
                metadata=e.metadata,
            )
            for e in page
        ],
        undecodable=[
            UndecodableTimelineEvent(
                global_position=b.global_position,
                stream_version=b.stream_version,
                event_id=b.event_id,
                type=b.type,
                error=b.error,
                raw=b.raw,
            )
            for b in bad
            if last is None or b.stream_version <= last
        ],
        next_after=last,
    )
