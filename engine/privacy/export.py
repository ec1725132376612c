"""Export (GDPR art. 15 and 20, CCPA access): everything known about a member, as JSON.

The export holds the profile, the decrypted contact points and aliases, every event of the
member's stream (and of the streams of members merged into it), personal fields inside
events decrypted where the data key still exists, journey runs and the message ledger.
Blind indexes and ciphertexts are left out: they mean nothing to the member.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import get_aliases, get_contact_points
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.profiles import get_profile
from journeyman.event_store import PostgresEventStore, UndecodableEvent

from .erasure import member_ids_of
from .fields import open_fields

EXPORT_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | memoryview):
        return None
    return value


async def export_member(
    store: PostgresEventStore, member_id: str, *, settings: Settings
) -> dict[str, Any]:
    """Everything known about `member_id` (following merges). `UnknownMember` if unknown."""
    pool = store.pool
    keyring = Keyring(settings.resolved_secret())
    ids = await member_ids_of(pool, member_id, keyring)
    survivor = ids[0]
    profile = await get_profile(pool, survivor, settings=settings)
    contacts = await get_contact_points(pool, survivor, keyring=keyring)
    aliases = await get_aliases(pool, survivor, keyring=keyring)
    keys = await load_data_keys(pool, keyring, ids)
    members = await pool.fetch(
        "SELECT member_id, merged_into, erased_at FROM members WHERE member_id = ANY($1::text[])",
        ids,
    )
    events: list[dict[str, Any]] = []
    undecodable: list[UndecodableEvent] = []
    for mid in ids:
        after = 0
        while True:
            bad: list[UndecodableEvent] = []
            page = await store.read_stream(f"member-{mid}", after, limit=1000, undecodable=bad)
            undecodable += bad
            for e in page:
                events.append(
                    {
                        "stream_id": e.stream_id,
                        "stream_version": e.stream_version,
                        "global_position": e.global_position,
                        "event_id": e.event_id,
                        "type": e.type,
                        "occurred_at": e.occurred_at.isoformat(),
                        "recorded_at": e.recorded_at.isoformat(),
                        "data": open_fields(e.data, keys.get(mid), e.event_id),
                        "metadata": e.metadata,
                    }
                )
            if len(page) + len(bad) < 1000:
                break
            after = max([e.stream_version for e in page] + [b.stream_version for b in bad]) + 1
    events.sort(key=lambda e: e["global_position"])
    journeys = await pool.fetch(
        "SELECT workflow_id, journey, key, running, variant, holdout, entered_at, exited_at, "
        "exit_reason, converted FROM journey_instances WHERE member_id = ANY($1::text[]) "
        "ORDER BY entered_at NULLS LAST, workflow_id",
        ids,
    )
    segments = await pool.fetch(
        "SELECT segment, member_id, entered_at FROM segment_memberships "
        "WHERE member_id = ANY($1::text[]) ORDER BY entered_at, segment",
        ids,
    )
    messages = await pool.fetch(
        "SELECT * FROM message_ledger WHERE member_id = ANY($1::text[]) ORDER BY delivery_id",
        ids,
    )
    return _plain(
        {
            "export_version": EXPORT_VERSION,
            "exported_at": dt.datetime.now(dt.UTC),
            "member_id": survivor,
            "member_ids": ids,
            "erased": any(r["erased_at"] is not None for r in members)
            or bool(profile and profile.erased),
            "profile": profile.model_dump(mode="json") if profile else None,
            "contact_points": {k: v for k, v in contacts.items() if k != "member_id"},
            "aliases": aliases,
            "events": events,
            # Stored events that cannot be read back: their place and columns as stored.
            "undecodable_events": [
                {
                    "stream_id": b.stream_id,
                    "stream_version": b.stream_version,
                    "global_position": b.global_position,
                    "event_id": b.event_id,
                    "type": b.type,
                    "error": b.error,
                    "raw": b.raw,
                }
                for b in sorted(undecodable, key=lambda b: b.global_position)
            ],
            "journeys": [dict(r) for r in journeys],
            "segments": [dict(r) for r in segments],
            "messages": [
                {
                    k: (json.loads(v) if isinstance(v, str) and k == "data" else v)
                    for k, v in r.items()
                }
                for r in messages
            ],
        }
    )
