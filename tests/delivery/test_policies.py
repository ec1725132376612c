"""Quiet hours and the frequency cap across time zones and daylight-saving changes, and the
cap under 200 concurrent sends to one member."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

import pytest
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.delivery.policies import quiet_hours_end

from .delivery_testkit import (
    add_member,
    deliverer,
    email_channel,
    make_settings,
    outbox_channel,
    request,
    sms_channel,
)

UTC = dt.UTC
NY = zoneinfo.ZoneInfo("America/New_York")
NIGHT, MORNING = dt.time(21, 0), dt.time(8, 0)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # New York, ordinary winter night: 23:00 EST -> 08:00 EST = 13:00 UTC
        (utc(2025, 1, 15, 4, 0), "America/New_York", utc(2025, 1, 15, 13, 0)),
        # the night clocks spring forward (9 March 2025): 08:00 is EDT, 12:00 UTC
        (utc(2025, 3, 9, 6, 30), "America/New_York", utc(2025, 3, 9, 12, 0)),
        # the night clocks fall back (2 November 2025): 08:00 is EST, 13:00 UTC
        (utc(2025, 11, 2, 5, 30), "America/New_York", utc(2025, 11, 2, 13, 0)),
        # Europe's spring change (30 March 2025): 08:00 CEST is 06:00 UTC
        (utc(2025, 3, 29, 22, 0), "Europe/Berlin", utc(2025, 3, 30, 6, 0)),
        # Sydney's autumn change (6 April 2025, AEDT -> AEST): 08:00 AEST = 22:00 UTC
        (utc(2025, 4, 5, 14, 0), "Australia/Sydney", utc(2025, 4, 5, 22, 0)),
        # half-hour zone: 22:30 IST -> 08:00 IST = 02:30 UTC
        (utc(2025, 6, 1, 17, 0), "Asia/Kolkata", utc(2025, 6, 2, 2, 30)),
        # before midnight local: ends tomorrow morning
        (utc(2025, 7, 1, 2, 0), "America/New_York", utc(2025, 7, 1, 12, 0)),
        # daytime: not quiet
        (utc(2025, 7, 1, 16, 0), "America/New_York", None),
        # exactly at the end: not quiet any more; exactly at the start: quiet
        (utc(2025, 7, 1, 12, 0), "America/New_York", None),
        (utc(2025, 7, 2, 1, 0), "America/New_York", utc(2025, 7, 2, 12, 0)),
    ],
)
def test_quiet_hours_end(now, tz, expected) -> None:
    assert quiet_hours_end(now, zoneinfo.ZoneInfo(tz), NIGHT, MORNING) == expected


def test_quiet_hours_ending_inside_a_skipped_hour() -> None:
    # quiet until 02:30, on the night New York skips 02:00-03:00: the end lands right after
    # the gap (03:30 EDT = 07:30 UTC), never before now and never an hour late
    now = utc(2025, 3, 9, 6, 10)  # 01:10 EST
    end = quiet_hours_end(now, NY, dt.time(0, 0), dt.time(2, 30))
    assert end == utc(2025, 3, 9, 7, 30)
    assert end > now


def test_no_quiet_hours_when_disabled_or_empty() -> None:
    now = utc(2025, 1, 15, 4, 0)
    assert quiet_hours_end(now, NY, None, MORNING) is None
    assert quiet_hours_end(now, NY, MORNING, MORNING) is None


@pytest.fixture
async def smtp():
    async with SmtpPeer() as peer:
        yield peer


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


async def test_quiet_hours_defer_marketing_sms_in_the_members_zone(store, tmp_path) -> None:
    settings = make_settings(tmp_path, quiet_hours_start=NIGHT, quiet_hours_end=MORNING)
    async with TwilioPeer() as twilio:
        ny = await add_member(store, settings, timezone="America/New_York")
        tokyo = await add_member(
            store, settings, timezone="Asia/Tokyo", phone="+14155550124", email="ko@example.com"
        )
        clock = Clock(utc(2025, 3, 9, 6, 30))  # 01:30 in New York, 15:30 in Tokyo
        d = deliverer(store, settings, {"sms": sms_channel(twilio)}, clock=clock)
        waiting = await d.deliver(request(ny, ["sms"]))
        assert waiting.status == "deferred"
        assert waiting.defer_until == utc(2025, 3, 9, 12, 0)  # 08:00 EDT, after the change
        assert (await d.deliver(request(tokyo, ["sms"]))).status == "sent"
        # transactional messages do not wait
        tx = await d.deliver(request(ny, ["sms"], step="2:tx", purpose="transactional"))
        assert tx.status == "sent"
        # when the journey wakes at defer_until, the same request goes out
        clock.now = waiting.defer_until
        assert (await d.deliver(request(ny, ["sms"]))).status != "deferred"
        assert twilio.accepted == 3


async def test_cap_window_is_rolling_24_hours_across_a_dst_change(store, tmp_path) -> None:
    """Around the spring-forward change, 'the same time tomorrow' on the member's clock is
    only 23 hours later: the rolling 24 h cap still counts the earlier message."""
    settings = make_settings(tmp_path, frequency_cap=1, default_timezone="America/New_York")
    member = await add_member(store, settings, timezone="America/New_York")
    clock = Clock(dt.datetime(2025, 3, 8, 12, 0, tzinfo=NY))  # noon EST, 17:00 UTC
    d = deliverer(store, settings, {"outbox": outbox_channel(tmp_path / "out")}, clock=clock)
    assert (await d.deliver(request(member, ["outbox"], step="1:a"))).status == "sent"
    clock.now = dt.datetime(2025, 3, 9, 12, 0, tzinfo=NY)  # noon EDT: 23 h later
    capped = await d.deliver(request(member, ["outbox"], step="2:b"))
    assert capped.status == "deferred" and capped.reason == "frequency cap"
    assert capped.defer_until == utc(2025, 3, 9, 17, 0)  # 13:00 EDT, 24 h after the first
    clock.now = capped.defer_until
    assert (await d.deliver(request(member, ["outbox"], step="2:b"))).status == "sent"


async def test_cap_counts_all_journeys_and_exempts_transactional(store, tmp_path) -> None:
    settings = make_settings(tmp_path, frequency_cap=2)
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"outbox": outbox_channel(tmp_path / "out")})
    for i, journey in enumerate(["cart_recovery", "winback"]):
        r = request(member, ["outbox"], step=f"{i}:s").model_copy(update={"journey": journey})
        assert (await d.deliver(r)).status == "sent"
    assert (await d.deliver(request(member, ["outbox"], step="9:x"))).status == "deferred"
    tx = request(member, ["outbox"], step="9:tx", purpose="transactional")
    assert (await d.deliver(tx)).status == "sent"


@pytest.mark.slow
async def test_200_concurrent_journeys_respect_the_cap_exactly(store, tmp_path, smtp) -> None:
    settings = make_settings(tmp_path, frequency_cap=3)
    member = await add_member(store, settings)
    d = deliverer(store, settings, {"email": email_channel(smtp)})
    requests = [
        request(member, ["email"], workflow_id=f"journey/j{i}/{member}", step="1:send")
        for i in range(200)
    ]
    outcomes = await asyncio.gather(*(d.deliver(r) for r in requests))
    statuses = [o.status for o in outcomes]
    assert statuses.count("sent") == 3
    assert statuses.count("deferred") == 197
    assert len(smtp.messages) == 3
    counted = await store.pool.fetchval(
        "SELECT count(*) FROM frequency_cap_ledger WHERE member_id = $1", member
    )
    assert counted == 3
    assert all(o.defer_until is not None for o in outcomes if o.status == "deferred")
