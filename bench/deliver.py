"""`python -m bench deliver [--quick] [--messages N] [--concurrency C] [--database-url URL]`

Deliveries per second through the `deliver` path — policies (consent, suppression, quiet
hours, frequency cap with its per-member lock), template rendering with signed links, the
never-double-send claim, the provider call and the outcome events — to the local SMTP peer
(aiosmtpd) and the local Twilio peer (driven by the real `twilio` client), beside the same
channel's bare `send` to the same peer in the same run, which is the limit. Same message
count and concurrency for both. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .common import bench_database, result_line


async def _timed(n: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await job(i)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - started)


async def _members(store: Any, settings: Any, count: int) -> list[str]:
    from journeyman.engine.ingest.ingestor import Ingestor
    from journeyman.engine.profiles import ProfileProjector

    events = []
    for i in range(count):
        events.append(
            {
                "event_id": f"bench-member-{i}",
                "type": "member.registered",
                "member": {
                    "id": f"bench-{i}",
                    "email": f"member{i}@bench.test",
                    "phone": f"+1415555{i:04d}",
                },
                "occurred_at": "2026-01-01T00:00:00+00:00",
                "properties": {"consent": {"sms:marketing": True}, "timezone": "UTC"},
            }
        )
    await Ingestor(store, settings).ingest_raw(events)
    await ProfileProjector(store, settings).run_until_caught_up()
    return [f"bench-{i}" for i in range(count)]


async def _run(url: str, n: int, concurrency: int) -> None:
    from journeyman.channels import Message
    from journeyman.channels.email import EmailChannel
    from journeyman.channels.sms import SmsChannel
    from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
    from journeyman.engine.contracts.delivery import SendRequest
    from journeyman.engine.core.delivery_settings import DeliverySettings
    from journeyman.engine.core.settings import Settings
    from journeyman.engine.delivery.service import Deliverer
    from journeyman.event_store import PostgresEventStore

    data_dir = Path(tempfile.mkdtemp(prefix="journeyman-bench-deliver-"))
    # quiet hours are checked on every send but not in effect now; the cap is counted
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    settings = Settings(
        secret_key=SecretStr("bench-secret-" + "z" * 40),
        data_dir=data_dir,
        delivery=DeliverySettings(
            frequency_cap=1000,
            quiet_hours_channels=["*"],
            quiet_hours_start=soon.time().replace(second=0, microsecond=0),
            quiet_hours_end=(soon + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0),
        ),
    )
    store = await PostgresEventStore.connect(url, min_size=2, max_size=concurrency + 4)
    members = await _members(store, settings, 500)
    figures: dict[str, dict[str, float]] = {}
    print(f"deliver bench: {n:,} messages per channel and path, {concurrency} at a time")
    async with SmtpPeer() as smtp, TwilioPeer() as twilio:
        channels = {
            "email": EmailChannel(
                {
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "none",
                    "from_address": "Shop <news@shop.test>",
                }
            ),
            "sms": SmsChannel(
                {
                    "account_sid": twilio.account_sid,
                    "auth_token": twilio.auth_token,
                    "from_number": "+15005550006",
                    "api_base_url": twilio.url,
                    "status_callback_url": "http://127.0.0.1:8787/webhooks/sms",
                }
            ),
        }
        deliverer = Deliverer(store, channels, settings=settings)
        run = uuid.uuid4().hex[:6]
        for name, template in (("email", "cart_reminder"), ("sms", "cart_coupon")):
            channel = channels[name]
            contact = "member0@bench.test" if name == "email" else "+14155550000"
            sample = Message(
                to=contact,
                text="Your cart is waiting: https://shop.example/cart/c1 Reply STOP to opt out.",
                subject="You left something in your cart",
                html="<p>Still thinking it over?</p>" if name == "email" else None,
                unsubscribe_url="https://shop.example/u/x" if name == "email" else None,
            )

            def bare(
                i: int, channel: Any = channel, sample: Message = sample, name: str = name
            ) -> Awaitable[Any]:
                return channel.send(sample, f"bare-{name}-{run}-{i}")

            def through(i: int, name: str = name, template: str = template) -> Awaitable[Any]:
                member = members[i % len(members)]
                req = SendRequest(
                    journey="cart_recovery",
                    member_id=member,
                    workflow_id=f"journey/cart_recovery/{member}/{name}-{run}-{i}",
                    entry_id="bench",
                    step="1:send",
                    channels=[name],
                    template=template,
                    context={
                        "cart_id": f"c{i}",
                        "items": [{"name": "Teapot"}],
                        "coupon_code": "CART10-X",
                        "coupon_percent": 10,
                    },
                )
                return deliverer.deliver(req)

            # warm both paths (connections, plans, templates)
            await _timed(20, concurrency, lambda i, b=bare: b(10_000_000 + i))
            await _timed(20, concurrency, lambda i, t=through: t(10_000_000 + i))
            # Alternate the two paths in rounds so that both see the same machine load.
            rounds = 5
            per = n // rounds
            bare_time = deliver_time = 0.0
            for r in range(rounds):
                offset = r * per
                bare_time += per / await _timed(per, concurrency, lambda i, o=offset: bare(o + i))
                deliver_time += per / await _timed(
                    per, concurrency, lambda i, o=offset: through(o + i)
                )
            limit = rounds * per / bare_time
            value = rounds * per / deliver_time
            figures[name] = {"deliver": value, "bare": limit}
            print(
                f"  {name:<6} deliver {value:>8,.1f}/s   bare send {limit:>8,.1f}/s   "
                f"ratio {value / limit:.2f}"
            )
        sent = await store.pool.fetchval(
            "SELECT count(*) FROM message_ledger WHERE status = 'sent'"
        )
        want = 2 * (n // 5 * 5 + 20)
        assert sent == want, f"expected {want} sent messages, the ledger has {sent}"
        for c in channels.values():
            await c.aclose()
    await store.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    value = 2 / sum(1 / f["deliver"] for f in figures.values())  # per-channel harmonic mean
    limit = 2 / sum(1 / f["bare"] for f in figures.values())
    print("reproduce: python -m bench deliver" + ("" if n > 200 else " --quick"))
    print(
        result_line(
            "deliver",
            value,
            "deliveries/s",
            limit,
            target_ratio=0.5,
            concurrency=concurrency,
            messages_per_channel=n,
            email=round(figures["email"]["deliver"], 1),
            email_bare=round(figures["email"]["bare"], 1),
            sms=round(figures["sms"]["deliver"], 1),
            sms_bare=round(figures["sms"]["bare"], 1),
        )
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench deliver")
    parser.add_argument("--quick", action="store_true", help="smaller run, under a minute")
    parser.add_argument("--messages", type=int, default=None, help="per channel and path")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    n = args.messages or (200 if args.quick else 2000)
    with bench_database(args.database_url) as url:
        asyncio.run(_run(url, n, args.concurrency))
