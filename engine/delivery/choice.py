"""Channel choice: which of a request's channels can carry this delivery, and to which
contact point.

A candidate is skipped, with the reason kept for the outcome, when its channel already
failed for this delivery, is not registered or configured, is paused, is suppressed or
blocked for the member, lacks consent for the purpose, or the member has no contact point of
the kind the channel needs. "push" means Web Push, then FCM, unless a channel is registered
under that very name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from journeyman.channels import Channel, ChannelMisconfigured, ContactKind, route
from journeyman.engine.contracts.delivery import SendRequest
from journeyman.engine.contracts.profile import MemberProfile
from journeyman.engine.core.delivery_settings import DeliverySettings

from . import claims
from .policies import consent_allows, quiet_hours_end, zone

PUSH_CHANNELS = ("webpush", "fcm")


@dataclass
class Candidate:
    name: str
    channel: Channel | None = None
    contact: str | None = None
    skip: str | None = None
    blame: str = "member"  # "member": suppressed; "channel": failed / deferred; "pause"


@dataclass
class SendContext:
    """What one attempt knows about the member and the moment."""

    request: SendRequest
    did: str
    now: dt.datetime
    profile: MemberProfile | None
    contacts: dict[str, Any]
    blocks: dict[tuple[str, str], str]
    pauses: dict[str, dt.datetime]
    render_at: dt.datetime | None = None  # the first attempt's render time, once claimed


def route_channel(channels: Mapping[str, Channel], name: str, config: DeliverySettings) -> Channel:
    """The configured channel for `name` (the outbox when so configured and it is missing);
    `ChannelMisconfigured` when there is none."""
    return route(channels, name, fallback="outbox" if config.outbox_fallback else None)


def expand(names: list[str], channels: Mapping[str, Channel]) -> list[str]:
    """The request's channel order with "push" spelled out and duplicates dropped."""
    out: list[str] = []
    for name in names:
        group = PUSH_CHANNELS if name == "push" and name not in channels else (name,)
        for n in group:
            if n not in out:
                out.append(n)
    return out


def check(
    ctx: SendContext,
    name: str,
    state: claims.DeliveryState,
    channels: Mapping[str, Channel],
    config: DeliverySettings,
) -> Candidate:
    cand = Candidate(name)
    purpose = ctx.request.purpose
    if name in state.failed:
        cand.skip, cand.blame = f"{name} failed: {state.failed[name]}", "channel"
        return cand
    try:
        cand.channel = route_channel(channels, name, config)
    except ChannelMisconfigured as exc:
        cand.skip, cand.blame = exc.message, "channel"
        return cand
    paused = ctx.pauses.get(cand.channel.name)
    if paused is not None:
        cand.skip = f"{cand.channel.name} paused until {paused.isoformat()}"
        cand.blame = "pause"
        return cand
    profile = ctx.profile
    if profile is not None and name in profile.suppressed:
        cand.skip = f"{name} suppressed ({profile.suppressed[name]})"
        return cand
    block = ctx.blocks.get((name, purpose)) or ctx.blocks.get((name, "*"))
    if block is not None:
        cand.skip = f"{name} blocked ({block})"
        return cand
    if not consent_allows(profile, name, purpose, config.opt_in_channels):
        cand.skip = f"no consent for {name}:{purpose}"
        return cand
    cand.contact = contact_for(cand.channel, ctx.contacts, ctx.request.member_id)
    if cand.contact is None:
        if cand.channel.contact == ContactKind.EXTERNAL:
            cand.skip = f"no {cand.channel.contact_system} id for {name}"
        else:
            cand.skip = f"no {cand.channel.contact} contact point for {name}"
    return cand


def contact_for(channel: Channel, contacts: dict[str, Any], member_id: str) -> str | None:
    """The member's contact point of the kind `channel` needs, or None."""
    kind = channel.contact
    if kind == ContactKind.EMAIL:
        return contacts.get("email")
    if kind == ContactKind.PHONE:
        return contacts.get("phone")
    if kind in (ContactKind.WEB_PUSH, ContactKind.FCM_TOKEN):
        wanted = "webpush" if kind == ContactKind.WEB_PUSH else "fcm"
        for sub in contacts.get("push", []):
            if sub.get("type") == wanted:
                if wanted == "fcm":
                    return sub.get("token")
                return json.dumps({"endpoint": sub["endpoint"], "keys": sub.get("keys", {})})
        return None
    if kind == ContactKind.MEMBER:
        return member_id
    if kind == ContactKind.EXTERNAL:
        return contacts.get("external", {}).get(channel.contact_system or "")
    return contacts.get("email") or contacts.get("phone") or member_id


async def load_blocks(pool: asyncpg.Pool, member_id: str) -> dict[tuple[str, str], str]:
    """The member's delivery blocks not yet folded into the profile, by (channel, purpose)."""
    rows = await pool.fetch(
        "SELECT b.channel, b.purpose, b.reason FROM delivery_blocks b "
        "LEFT JOIN member_profiles p ON p.member_id = b.member_id "
        "WHERE b.member_id = $1 AND (p.last_position IS NULL OR b.position > p.last_position)",
        member_id,
    )
    blocks: dict[tuple[str, str], str] = {}
    for r in sorted(rows, key=lambda r: r["reason"]):
        key = (r["channel"], r["purpose"])
        blocks[key] = f"{blocks[key]}, {r['reason']}" if key in blocks else r["reason"]
    return blocks


async def load_pauses(pool: asyncpg.Pool, now: dt.datetime) -> dict[str, dt.datetime]:
    rows = await pool.fetch(
        "SELECT channel, paused_until FROM channel_pauses WHERE paused_until > $1", now
    )
    return {r["channel"]: r["paused_until"] for r in rows}


def quiet_until(ctx: SendContext, channel: str, config: DeliverySettings) -> dt.datetime | None:
    """When quiet hours end for this member on `channel`, if they hold now."""
    if "*" not in config.quiet_hours_channels and channel not in config.quiet_hours_channels:
        return None
    tz = zone(ctx.profile.timezone if ctx.profile else None, config.default_timezone)
    return quiet_hours_end(ctx.now, tz, config.quiet_hours_start, config.quiet_hours_end)
