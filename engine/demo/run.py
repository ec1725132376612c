"""`make demo` / `journeyman demo`: the whole engine doing its job on real parts.

1. Starts the engine as `journeyman up` does (embedded PostgreSQL, Temporal dev server,
   worker, dispatcher, scheduler, API) with the email and SMS channels pointed at local
   protocol peers: a real SMTP server and a Twilio-speaking HTTP server.
2. Generates a shop (`journeyman.engine.demo.shop`): about 60 days of history for most members,
   ingested over the HTTP API with the Python client. History is older than every journey's
   freshness window: it builds profiles and starts nothing — except the win-back journey,
   whose inactivity scan finds the members who have been quiet for 30 days.
3. Plays the live part in compressed time (`day_seconds` real seconds per simulated day):
   new members register, members leave carts. Journey delays are compressed by journey
   settings overrides (`JOURNEYMAN_JOURNEYS`) — the journeys' code is unchanged.
4. Members respond only to messages that really reached the peers, as the behaviour model
   (`journeyman.engine.demo.behaviour`) says: clicks and orders go back over the HTTP API. Members
   also order on their own at their base propensity, messages or not.
5. Prints each journey's funnel, the measured lift with its 95% interval beside the true
   lift of the model, and reconciles messages at the peers with `message.sent` events and
   ledger rows.

Re-running over the same data directory is safe: every event id is deterministic, so the
second run stores nothing twice and starts no journey twice; it shows the stored results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.runtime.up import Up
from rich.console import Console

from .behaviour import BehaviourModel
from .journeys import SPAN_DAYS, journey_overrides
from .report import DemoReport, collect, print_report
from .shop import PRODUCTS, Shop


@dataclass(order=True)
class _Action:
    at: float
    seq: int
    event: dict[str, Any] = field(compare=False)
    why: str = field(compare=False, default="")


class DemoRun:
    def __init__(
        self,
        settings: Settings,
        *,
        members: int,
        events: int,
        seed: int,
        day_seconds: float,
        live_days: float,
        cart_share: float,
        console: Console,
    ) -> None:
        self.settings = settings
        self.console = console
        self.day = day_seconds
        self.live_days = live_days
        self.cart_share = cart_share
        self.model = BehaviourModel(seed=seed)
        self.now0 = dt.datetime.now(dt.UTC)
        # History ends a day before now: older than every freshness window.
        self.shop = Shop(members, events, seed=seed, end=self.now0 - dt.timedelta(days=1))
        self.report = DemoReport()
        self.queue: list[_Action] = []
        self._seq = 0
        self.converted: set[str] = set()
        self.seen_messages = 0
        self.seen_sms = 0
        self.pending: list[tuple[str, str, str, str]] = []
        self.carts: dict[str, list[str]] = {}
        self.mail_dir = settings.data_dir / "demo-messages"

    # ------------------------------------------------------------------ scheduling
    def at(self, when: float, event: dict[str, Any], why: str) -> None:
        self._seq += 1
        heapq.heappush(self.queue, _Action(when, self._seq, event, why))

    def clock(self) -> float:
        return time.monotonic()

    @staticmethod
    def event(
        event_id: str, type: str, member: str, props: dict[str, Any], **who: Any
    ) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": type,
            "member": {"id": member, **who},
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "properties": props,
        }

    # ------------------------------------------------------------------ the live plan
    def plan_live(self, start: float, winback_members: list[str]) -> None:
        """New registrations and abandoned carts over the live days, and the orders members
        place on their own (base propensity), scheduled in real time from `start`."""
        import random

        rng = random.Random(f"{self.model.seed}/live")
        span = self.live_days * self.day
        for m in self.shop.newcomers:
            t = start + rng.uniform(0, span)
            reg = m.registration()
            ev = self.event(
                reg.event_id,
                reg.type,
                m.id,
                reg.properties,
                email=m.email,
                phone=m.phone,
            )
            self.at(t, ev, "registered")
            if self.model.converts_anyway(m.id, "welcome"):
                when = t + self.model.when_anyway(m.id, "welcome") * SPAN_DAYS["welcome"] * 0.7 * (
                    self.day
                )
                self.at(when, self._order(m.id, f"{m.id}-first", None), "order (own accord)")
        active = self.shop.active_since(30, self.shop.end)
        carts = round(len(self.shop.by_id) * self.cart_share)
        for i in range(carts):
            m = rng.choice(active)
            t = start + rng.uniform(0, span)
            cart = f"{m.id}-live-{i}"
            self.carts.setdefault(m.id, []).append(cart)
            sku, price = rng.choice(PRODUCTS)
            self.at(
                t,
                self.event(
                    f"{cart}-upd",
                    "cart.updated",
                    m.id,
                    {"cart_id": cart, "items": [{"sku": sku, "qty": 1, "price": price}]},
                ),
                "cart left",
            )
            if self.model.converts_anyway(m.id, "cart_recovery", cart):
                frac = self.model.when_anyway(m.id, "cart_recovery", cart)
                self.at(t + frac * 3.5 * self.day, self._order(m.id, cart, cart), "order (own)")
        for mid in winback_members:
            if self.model.converts_anyway(mid, "winback"):
                frac = self.model.when_anyway(mid, "winback")
                self.at(
                    start + (0.5 + frac * 9) * self.day,
                    self._order(mid, f"{mid}-back", None),
                    "order (own accord)",
                )

    def _order(self, member: str, key: str, cart: str | None) -> dict[str, Any]:
        _sku, price = PRODUCTS[sum(map(ord, key)) % len(PRODUCTS)]
        props: dict[str, Any] = {"order_id": f"o-{key}", "total": price}
        if cart:
            props["cart_id"] = cart
        return self.event(f"order-{key}", "order.placed", member, props)

    # ------------------------------------------------------------------ responses
    async def respond(self, peers: Any, conn: asyncpg.Connection, api: httpx.AsyncClient) -> None:
        """Look at what reached the peers since last time; schedule the members' responses."""
        smtp, twilio = peers
        # (provider message id, channel, text, raw) of messages not yet responded to
        fresh: list[tuple[str, str, str, str]] = self.pending
        self.pending = []
        for msg in smtp.messages[self.seen_messages :]:
            body = msg.get_body(("plain", "html"))
            text = body.get_content() if body is not None else ""
            fresh.append((str(msg["Message-ID"]), "email", text, msg.as_string()))
        self.seen_messages = len(smtp.messages)
        for sms in twilio.messages[self.seen_sms :]:
            fresh.append((sms.sid, "sms", sms.body, f"To: {sms.to}\n\n{sms.body}\n"))
        self.seen_sms = len(twilio.messages)
        if not fresh:
            return
        rows = await conn.fetch(
            "SELECT provider_message_id, delivery_id, member_id, journey, template, channel "
            "FROM message_ledger WHERE provider_message_id = ANY($1::text[])",
            [f[0] for f in fresh],
        )
        known = {r["provider_message_id"]: r for r in rows}
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        for provider_id, _channel, text, raw in fresh:
            row = known.get(provider_id)
            if row is None:
                # The outcome is recorded just after the provider accepted the message:
                # look again on the next round.
                self.pending.append((provider_id, _channel, text, raw))
                continue
            did, member, template = row["delivery_id"], row["member_id"], row["template"]
            if _channel == "sms":
                # The handset got it: the peer posts the delivery receipt to the engine.
                await twilio.send_status_callback(provider_id, "delivered")
                self.report.responses["SMS delivery receipt"] += 1
            (self.mail_dir / f"{did}.{'eml' if _channel == 'email' else 'txt'}").write_text(raw)
            delay = self.model.response_delay(did) * self.day
            if self.model.clicks(did, template):
                link = _tracking_link(text, self.report.api_url)
                self.at(
                    now + delay / 2,
                    {"click": link}
                    if link
                    else self.event(
                        f"click-{did}",
                        "message.clicked",
                        member,
                        {
                            "delivery_id": did,
                            "journey": row["journey"],
                            "channel": row["channel"],
                        },
                    ),
                    "clicked",
                )
            if self.model.persuaded(did, template):
                key = (
                    self._open_cart(member)
                    if row["journey"] == "cart_recovery"
                    else f"{member}-{row['journey']}"
                )
                cart = key if row["journey"] == "cart_recovery" else None
                if key and f"{member}/{key}" not in self.converted:
                    self.at(now + delay, self._order(member, key, cart), "order (persuaded)")

    def _open_cart(self, member: str) -> str | None:
        """The member's most recent live cart that they have not ordered yet."""
        for cart in reversed(self.carts.get(member, [])):
            if f"{member}/{cart}" not in self.converted:
                return cart
        return None

    async def send_due(self, client: Any, http: httpx.AsyncClient) -> int:
        now = self.clock()
        due: list[_Action] = []
        while self.queue and self.queue[0].at <= now:
            due.append(heapq.heappop(self.queue))
        events = []
        for a in due:
            if "click" in a.event:
                r = await http.get(a.event["click"], follow_redirects=False)
                self.report.responses["click (tracked link)"] += 1
                if r.status_code >= 400:
                    self.report.responses["click link refused"] += 1
                continue
            ev = a.event
            if ev["type"] == "order.placed":
                key = ev["properties"].get("cart_id") or ev["properties"]["order_id"][2:]
                tag = f"{ev['member']['id']}/{key}"
                if tag in self.converted:
                    continue  # they already ordered: one order per cart or journey
                self.converted.add(tag)
            ev["occurred_at"] = dt.datetime.now(dt.UTC).isoformat()
            events.append(ev)
            self.report.responses[a.why] += 1
        if events:
            result = await client.send_batch(events)
            self.report.stored += sum(1 for r in result.results if r.status == "accepted")
            self.report.duplicates += sum(1 for r in result.results if r.status == "duplicate")
        return len(events)


def _tracking_link(text: str, api_url: str) -> str | None:
    """The first signed click-tracking link into this engine's API, if the message has one."""
    if not api_url:
        return None
    for url in re.findall(r"https?://[^\s\"'<>]+", text):
        if url.startswith(api_url) and "/unsubscribe" not in url and "/o/" not in url:
            return url
    return None


async def _metric(http: httpx.AsyncClient, name: str) -> dict[str, float]:
    """Samples of one metric from the API's /metrics, by label set."""
    text = (await http.get("/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name) :]] = float(value)
    return out


async def run_demo(
    members: int = 700,
    events: int = 17_000,
    seed: int = 7,
    *,
    day_seconds: float = 4.0,
    live_days: float = 3.0,
    cart_share: float = 0.2,
    settings: Settings | None = None,
    console: Console | None = None,
    keep_running: bool = False,
) -> DemoReport:
    from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
    from journeyman.engine.access.keys import create_key
    from journeyman.engine.client import AsyncJourneymanClient

    console = console or Console()
    settings = settings or get_settings()
    started = time.perf_counter()
    run = DemoRun(
        settings,
        members=members,
        events=events,
        seed=seed,
        day_seconds=day_seconds,
        live_days=live_days,
        cart_share=cart_share,
        console=console,
    )
    report = run.report
    console.rule("[bold]Journeyman demo")

    def status(part: str, state: str, detail: str) -> None:
        if state != "stopped":
            console.print(
                f"  [bold]{part:<11}[/bold] [green]{state:<8}[/green] {detail}", soft_wrap=True
            )

    async with SmtpPeer() as smtp, TwilioPeer() as twilio:
        from journeyman.engine.runtime.stack import free_port

        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        report.api_url = api_url
        env = {
            "JOURNEYMAN_CHANNELS__EMAIL__HOST": "127.0.0.1",
            "JOURNEYMAN_CHANNELS__EMAIL__PORT": str(smtp.port),
            "JOURNEYMAN_CHANNELS__EMAIL__SECURITY": "none",
            "JOURNEYMAN_CHANNELS__EMAIL__FROM_ADDRESS": "Demo Shop <news@shop.example>",
            "JOURNEYMAN_CHANNELS__SMS__ACCOUNT_SID": twilio.account_sid,
            "JOURNEYMAN_CHANNELS__SMS__AUTH_TOKEN": twilio.auth_token,
            "JOURNEYMAN_CHANNELS__SMS__FROM_NUMBER": "+15550000000",
            "JOURNEYMAN_CHANNELS__SMS__API_BASE_URL": twilio.url,
            # The Twilio peer reports delivery back, signed, as Twilio does.
            "JOURNEYMAN_CHANNELS__SMS__STATUS_CALLBACK_URL": f"{api_url}/webhooks/sms",
            "JOURNEYMAN_DELIVERY__PUBLIC_URL": api_url,
            # Quiet hours follow the wall clock in each member's time zone; the demo's
            # compressed days would make them hold messages for hours, so they are off.
            "JOURNEYMAN_DELIVERY__QUIET_HOURS_CHANNELS": "[]",
            # The frequency cap's window is compressed like every other duration.
            "JOURNEYMAN_DELIVERY__FREQUENCY_WINDOW": f"PT{day_seconds:g}S",
            "JOURNEYMAN_JOURNEYS": json.dumps(journey_overrides(day_seconds)),
        }
        up = Up(
            settings,
            with_scheduler=False,
            api_port=api_port,
            extra_env=env,
            status=status,
            scan_every=max(1.0, day_seconds / 2),
        )
        console.print(
            f"  [bold]{'peers':<11}[/bold] [green]{'ready':<8}[/green] SMTP 127.0.0.1:{smtp.port}, "
            f"Twilio API {twilio.url}",
            soft_wrap=True,
        )
        await up.start()
        try:
            await _play(run, up, smtp, twilio, console, create_key, AsyncJourneymanClient)
            report.seconds = time.perf_counter() - started
            print_report(report, console)
            if keep_running:
                console.print(
                    f"dashboard: {api_url}/dashboard — the engine keeps running; Ctrl-C stops it"
                )
                await up.wait()
        finally:
            await up.stop()
    return report


async def _play(
    run: DemoRun, up: Up, smtp: Any, twilio: Any, console: Console, create_key: Any, client_cls: Any
) -> None:
    report = run.report
    conn = await asyncpg.connect(up.database_url)
    try:
        token, _ = await create_key(conn, ["ingest", "read"], name="demo")
        http = httpx.AsyncClient(
            base_url=up.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        client = client_cls(up.api_url, token, batch_size=500)
        try:
            # -------------------------------------------------------------- history
            t = time.perf_counter()
            shop = run.shop
            # The synthetic shop's ids hold nothing personal: make them the store's ids too
            # (a user id equal to a store member id names that member), so the behaviour
            # model follows the same member through the ledger and the journeys.
            await conn.execute(
                "INSERT INTO members (member_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                list(shop.by_id),
            )
            history = [e.api(shop.by_id[e.member_id]) for e in shop.history()]
            result = await client.send_batch(history, concurrency=2)
            accepted = sum(1 for r in result.results if r.status == "accepted")
            dupes = sum(1 for r in result.results if r.status == "duplicate")
            report.stored += accepted
            report.duplicates += dupes
            report.rerun = accepted == 0 and dupes > 0
            took = time.perf_counter() - t
            console.print(
                f"  [bold]{'history':<11}[/bold] {len(history):,} events of {len(shop.members):,} "
                f"members over {shop.days} days over HTTP: {accepted:,} stored, {dupes:,} already "
                f"there ({took:.1f} s, {len(history) / took:,.0f} events/s)",
                soft_wrap=True,
            )
            quiet = [m.id for m in shop.quiet_since(30, dt.datetime.now(dt.UTC))]
            if report.rerun:
                console.print(
                    "  this data directory already holds the demo: nothing was stored twice and "
                    "no journey starts again; showing the stored results"
                )
            else:
                await _wait_projected(http)
                # The inactivity scan runs once the history is in: it is the past.
                await up.start_scheduler()
                await _wait_entered(http, "winback", len(quiet), timeout=60)
                console.print(
                    f"  [bold]{'live':<11}[/bold] {run.live_days:g} simulated days of "
                    f"registrations and carts, one day = {run.day:g} s; journeys run on "
                    "Temporal with their delays compressed by settings",
                    soft_wrap=True,
                )
                start = run.clock()
                run.plan_live(start, quiet)
                end = start + (run.live_days + max(SPAN_DAYS.values())) * run.day
                await _live(run, conn, http, client, (smtp, twilio), end)
            # -------------------------------------------------------------- results
            await collect(run, conn, http, (smtp, twilio))
        finally:
            await client.aclose()
            await http.aclose()
    finally:
        await conn.close()


async def _wait_projected(http: httpx.AsyncClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lags = await _metric(http, "journeyman_subscription_lag_events")
        if lags and all(v == 0 for v in lags.values()):
            return
        await asyncio.sleep(0.5)


async def _wait_entered(http: httpx.AsyncClient, journey: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entered = await _metric(http, "journeyman_journeys_entered_total")
        if entered.get(f'{{journey="{journey}"}}', 0) >= n:
            return
        await asyncio.sleep(0.5)


async def _live(
    run: DemoRun,
    conn: asyncpg.Connection,
    http: httpx.AsyncClient,
    client: Any,
    peers: tuple[Any, Any],
    end: float,
) -> None:
    last_note = 0.0
    hard_stop = end + 300
    while True:
        await run.respond(peers, conn, http)
        await run.send_due(client, http)
        now = run.clock()
        if now >= end and not run.queue:
            entered = await _metric(http, "journeyman_journeys_entered_total")
            exited = await _metric(http, "journeyman_journeys_exited_total")
            if all(exited.get(k, 0) >= v for k, v in entered.items()):
                await run.respond(peers, conn, http)
                if not run.queue:
                    return
        if now >= hard_stop:
            run.console.print("[yellow]stopping the live part: journeys are still running[/]")
            return
        if now - last_note > 10:
            last_note = now
            running = await _metric(http, "journeyman_journeys_running")
            run.console.print(
                f"    {now - (end - (run.live_days + max(SPAN_DAYS.values())) * run.day):5.0f} s: "
                f"{sum(running.values()):.0f} journeys running, "
                f"{len(peers[0].messages)} emails and {len(peers[1].messages)} SMS delivered, "
                f"{sum(run.report.responses.values())} responses",
                soft_wrap=True,
            )
        await asyncio.sleep(0.1)
