"""The fault rig: the real system as separate processes, real peers, a load, a reconciliation.

One `Rig` is one deployment of Journeyman for one fault scenario:

* a PostgreSQL database (a fresh copy of the migrated template, or a private embedded
  server that a scenario may stop and start),
* its own Temporal dev server (history in a SQLite file, so it can be restarted),
* an SMTP peer and a Twilio peer in the test's event loop (they count what they receive,
  by delivery id, and can be scripted to fail),
* `journeyman api`, `journeyman worker` and `journeyman dispatcher` as subprocesses pointed
  at all of that by `JOURNEYMAN_*` settings, which a scenario may SIGKILL and start again.

`Load` sends members' events through the Python client (over HTTP, with its retries) and
keeps the client-side acknowledgement log. `reconcile()` compares that log with the `events`
table, the peers' counts with the `message.*` events and with what was due, and Temporal's
list of workflow runs with the carts that should have started one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.access.keys import create_key
from journeyman.engine.client import AsyncJourneymanClient, make_event
from journeyman.engine.runtime.stack import TemporalDevServer, free_port

SECRET = "fault-suite-secret-" + "f" * 32
JOURNEY = "cart_recovery"
DISABLED = ("welcome", "post_purchase_survey", "winback")
JOURNEYMAN = str(Path(sys.executable).parent / "journeyman")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "fault-logs"


# ------------------------------------------------------------------------------- waiting
async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, every: float = 0.25
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


# ------------------------------------------------------------------------------- settings
@dataclass
class Timings:
    """Journey delays, in seconds (cart recovery: reminder, then coupon, then the goal)."""

    quiet_period: float = 1.5
    coupon_delay: float = 2.0
    attribution_window: float = 1.0

    def overrides(self) -> dict[str, Any]:
        journeys: dict[str, Any] = {name: {"enabled": False} for name in DISABLED}
        journeys[JOURNEY] = {
            "quiet_period": self.quiet_period,
            "coupon_delay": self.coupon_delay,
            "attribution_window": self.attribution_window,
        }
        return journeys


# ------------------------------------------------------------------------------- processes
@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Rig:
    def __init__(self, root: Path, database_url: str, *, timings: Timings | None = None) -> None:
        self.root = root
        self.database_url = database_url
        self.timings = timings or Timings()
        self.temporal = TemporalDevServer(root / "temporal")
        self.smtp = SmtpPeer()
        self.twilio = TwilioPeer()
        self.api_port = free_port()
        self.api_token = ""
        self.procs: dict[str, Proc] = {}
        self._pool: asyncpg.Pool | None = None

    # -- life cycle -----------------------------------------------------------------------
    async def __aenter__(self) -> Rig:
        self.root.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.temporal.start)
        await self.smtp.start()
        await self.twilio.start()
        self._pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=3)
        self.api_token, _ = await create_key(self._pool, ["ingest"], name="fault suite")
        for name, argv in (
            ("api", [sys.executable, "-m", "journeyman.engine.api"]),
            ("worker", [JOURNEYMAN, "worker"]),
            ("dispatcher", [JOURNEYMAN, "dispatcher"]),
        ):
            self.procs[name] = Proc(name, argv, self.root / f"{name}.log")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs.values():
            self.stop(proc.name)
        await self.smtp.stop()
        await self.twilio.stop()
        if self._pool is not None:
            await self._pool.close()
        await asyncio.to_thread(self.temporal.stop)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    async def reconnect_pool(self) -> None:
        """A fresh pool (after the database server was restarted)."""
        if self._pool is not None:
            self._pool.terminate()
        self._pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=3)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        channels = {
            "email": {
                "host": "127.0.0.1",
                "port": self.smtp.port,
                "security": "none",
                "from_address": "Shop <news@shop.test>",
                "timeout": 10,
            },
            "sms": {
                "account_sid": self.twilio.account_sid,
                "auth_token": self.twilio.auth_token,
                "from_number": "+15005550006",
                "api_base_url": self.twilio.url,
                "status_callback_url": f"{self.api_url}/webhooks/sms",
            },
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYMAN_")}
        env.update(
            {
                "JOURNEYMAN_DATABASE_URL": self.database_url,
                "JOURNEYMAN_TEMPORAL_ADDRESS": self.temporal.address,
                "JOURNEYMAN_TEMPORAL_NAMESPACE": self.temporal.namespace,
                "JOURNEYMAN_SECRET_KEY": SECRET,
                "JOURNEYMAN_DATA_DIR": str(self.root / "data"),
                "JOURNEYMAN_API_HOST": "127.0.0.1",
                "JOURNEYMAN_API_PORT": str(self.api_port),
                "JOURNEYMAN_JOURNEYS": json.dumps(self.timings.overrides()),
                "JOURNEYMAN_CHANNELS": json.dumps(channels),
                "JOURNEYMAN_DELIVERY": json.dumps(
                    {
                        "quiet_hours_start": None,
                        "frequency_cap": None,
                        "public_url": self.api_url,
                    }
                ),
                "JOURNEYMAN_DB_POOL_MAX": "6",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self, name: str) -> Proc:
        proc = self.procs[name]
        if proc.running:
            return proc
        log = open(proc.log, "ab")
        log.write(f"--- start {proc.starts + 1} at {time.strftime('%X')}\n".encode())
        log.flush()
        proc.popen = subprocess.Popen(
            proc.argv,
            env=self.env(),
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        proc.starts += 1
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown code runs, in-flight work is simply gone."""
        proc = self.procs[name]
        assert proc.running and proc.popen is not None, f"{name} is not running"
        os.kill(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(10)
        proc.kills += 1

    def stop(self, name: str) -> None:
        proc = self.procs[name]
        if proc.popen is None:
            return
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)
        proc.popen = None

    def pid(self, name: str) -> int:
        popen = self.procs[name].popen
        assert popen is not None
        return popen.pid

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.procs[name].log
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_frames(self, name: str) -> str:
        """The lines of a crashed process's log that name our own code (rich tracebacks
        are long; these say where it failed)."""
        path = self.procs[name].log
        text = path.read_text(errors="replace") if path.exists() else ""
        marks = ("engine", "event_store", "workflows", "channels", "Error", "error")
        return "\n".join(line for line in text.splitlines()[-400:] if any(m in line for m in marks))

    def assert_alive(self) -> None:
        for proc in self.procs.values():
            if proc.popen is not None and proc.popen.poll() is not None:
                kept = ARTIFACTS / f"{self.root.parent.name}-{proc.name}.log"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(proc.log, kept)  # the tmp dir does not outlive the session
                raise AssertionError(
                    f"{proc.name} exited with {proc.popen.returncode} (log {proc.log}):\n"
                    f"{self.log_frames(proc.name)}\n...\n{self.log_tail(proc.name, 12)}"
                )

    async def start_all(self) -> None:
        for attempt in range(3):
            self.start("api")
            try:
                await self.wait_api()
                break
            except AssertionError:
                # Another process on this machine took the free port we picked: pick again.
                if attempt == 2 or "address already in use" not in self.log_tail("api"):
                    raise
                self.procs["api"].popen = None
                self.api_port = free_port()
        for name in ("worker", "dispatcher"):
            self.start(name)
        await self.wait_ready("worker", "worker on ")
        await self.wait_ready("dispatcher", "dispatching to ")

    async def wait_ready(self, name: str, marker: str, timeout: float = 90.0) -> None:
        """Until the process has logged `marker` (said once it reached its database and
        Temporal): a fault must hit a running system, not one still starting."""
        proc = self.procs[name]

        async def ready() -> bool:
            self.assert_alive()
            text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
            start = text.rfind("--- start ")
            return marker in text[max(start, 0) :]

        await eventually(ready, timeout=timeout, what=f"the {name} process to be ready")

    async def wait_api(self, timeout: float = 90.0) -> None:
        async with httpx.AsyncClient(timeout=2) as http:

            async def up() -> bool:
                self.assert_alive()
                try:
                    return (await http.get(f"{self.api_url}/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(up, timeout=timeout, what="the API process to answer /healthz")

    # -- what the peers received ----------------------------------------------------------
    def peer_deliveries(self) -> Counter[str]:
        """Messages the peers accepted, by delivery id (email header, SMS callback URL)."""
        found: Counter[str] = Counter()
        for message in self.smtp.messages:
            found[str(message.get("X-Journeyman-Delivery", "?"))] += 1
        for sms in self.twilio.messages:
            query = parse_qs(urlsplit(sms.status_callback or "").query)
            found[(query.get("delivery_id") or ["?"])[0]] += 1
        return found

    # -- Temporal ------------------------------------------------------------------------
    async def temporal_client(self) -> Any:
        from temporalio.client import Client
        from temporalio.contrib.pydantic import pydantic_data_converter

        return await Client.connect(
            self.temporal.address,
            namespace=self.temporal.namespace,
            data_converter=pydantic_data_converter,
        )

    async def journey_runs(self) -> list[dict[str, Any]]:
        client = await self.temporal_client()
        runs = []
        async for wf in client.list_workflows(f"WorkflowType = '{JOURNEY}'"):
            runs.append(
                {
                    "id": wf.id,
                    "run_id": wf.run_id,
                    "status": wf.status.name if wf.status is not None else "UNKNOWN",
                }
            )
        return runs


# ------------------------------------------------------------------------------- the load
@dataclass
class Member:
    id: str
    cart: str
    holdout: bool


def cart_spec() -> Any:
    from journeyman.engine.runtime.worker import registered_journeys

    return registered_journeys()[JOURNEY].__journey__


class Load:
    """Members who identify themselves (email, phone, SMS consent), browse and leave a cart.

    Every cart that is not in the journey's holdout group is due two messages: the reminder
    (after the quiet period) and the coupon (after the coupon delay). The acknowledgement
    log holds every event id the API answered `accepted` or `duplicate` for.
    """

    def __init__(self, rig: Rig, members: int, *, tag: str, batch: int = 20) -> None:
        spec = cart_spec()
        self.rig = rig
        self.batch = batch
        self.members = [
            Member(id=f"{tag}-{i}", cart=f"cart-{i}", holdout=spec.assign(f"{tag}-{i}")[1])
            for i in range(members)
        ]
        self.events = [e for m in self.members for e in self._events_of(m)]
        self.acknowledged: dict[str, str] = {}
        self.rejected: list[Any] = []
        self.requests_failed = 0
        self.sent = 0
        self.ack_log = rig.root / "acknowledged.jsonl"

    def _events_of(self, m: Member) -> list[dict[str, Any]]:
        n = int(m.id.rsplit("-", 1)[1])
        area = 200 + zlib.crc32(m.id.rsplit("-", 1)[0].encode()) % 700  # one per load tag
        who = {"id": m.id, "email": f"{m.id}@example.com", "phone": f"+1{area}555{n:04d}"}
        now = dt.datetime.now(dt.UTC)
        return [
            make_event("member.identified", who, {"consent": {"sms:marketing": True}}),
            make_event("page.viewed", {"id": m.id}, {"path": "/teapots"}),
            make_event("product.viewed", {"id": m.id}, {"sku": f"sku-{n % 7}"}),
            make_event(
                "cart.updated",
                {"id": m.id},
                {"cart_id": m.cart, "items": [{"sku": f"sku-{n % 7}", "qty": 1}]},
                occurred_at=now,
            ),
        ]

    @property
    def due(self) -> int:
        return 2 * sum(1 for m in self.members if not m.holdout)

    def client(self) -> AsyncJourneymanClient:
        return AsyncJourneymanClient(
            self.rig.api_url,
            self.rig.api_token,
            batch_size=self.batch,
            timeout=15,
            max_retries=12,
            backoff=0.2,
            max_backoff=2.0,
        )

    async def run(
        self, *, pause: float = 0.05, on_batch: Callable[[int], Awaitable[None]] | None = None
    ) -> None:
        """Send every event, batch by batch; a batch whose retries all fail is sent again
        (same event ids) until the API acknowledges it, as a careful producer does."""
        # The members' ids are the store's ids too (a user id equal to a store member id
        # names that member): workflow ids and holdout groups are known beforehand.
        await self.rig.pool.execute(
            "INSERT INTO members (member_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            [m.id for m in self.members],
        )
        async with self.client() as jm:
            for i in range(0, len(self.events), self.batch):
                chunk = self.events[i : i + self.batch]
                while True:
                    try:
                        result = await jm.send_batch(chunk)
                        break
                    except (httpx.HTTPError, OSError):
                        self.requests_failed += 1
                        await asyncio.sleep(1)
                with self.ack_log.open("a") as log:
                    for outcome in result.results:
                        if outcome.status == "rejected":
                            self.rejected.append(outcome)
                            continue
                        assert outcome.event_id is not None
                        self.acknowledged[outcome.event_id] = outcome.status
                        log.write(
                            json.dumps({"event_id": outcome.event_id, "status": outcome.status})
                        )
                        log.write("\n")
                self.sent += len(chunk)
                if on_batch is not None:
                    await on_batch(i // self.batch)
                await asyncio.sleep(pause)


# ------------------------------------------------------------------------------- reconcile
@dataclass
class Figures:
    scenario: str
    fault: str
    members: int
    events_sent: int = 0
    events_acknowledged: int = 0
    events_acknowledged_as_duplicate: int = 0
    events_stored: int = 0
    events_missing: int = 0
    events_duplicated: int = 0
    events_rejected: int = 0
    messages_due: int = 0
    messages_sent: int = 0
    messages_in_doubt: int = 0
    messages_failed: int = 0
    messages_at_peers: int = 0
    messages_duplicated: int = 0
    messages_missing: int = 0
    journeys_expected: int = 0
    journey_runs: int = 0
    journeys_completed: int = 0
    journeys_stuck: int = 0
    journeys_duplicated: int = 0
    processes_killed: dict[str, int] = field(default_factory=dict)
    peer_failures_scripted: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return (
            f"[{self.scenario}] events acknowledged/stored/duplicated "
            f"{self.events_acknowledged}/{self.events_stored}/{self.events_duplicated} "
            f"(missing {self.events_missing}); messages due/sent/duplicated "
            f"{self.messages_due}/{self.messages_sent}/{self.messages_duplicated} "
            f"(in doubt {self.messages_in_doubt}, at peers {self.messages_at_peers}, "
            f"missing {self.messages_missing}); journeys {self.journeys_completed}/"
            f"{self.journeys_expected} completed, {self.journeys_stuck} stuck, "
            f"{self.journeys_duplicated} duplicated; {self.seconds:.0f}s"
        )


async def wait_for_journeys(rig: Rig, load: Load, *, timeout: float) -> None:
    """Until every cart's journey has completed (and nothing else runs)."""
    expected = {f"journey/{JOURNEY}/{m.id}/{m.cart}" for m in load.members}

    async def done() -> bool:
        rig.assert_alive()
        try:
            runs = await rig.journey_runs()
        except Exception:  # Temporal restarting: ask again
            return False
        completed = {r["id"] for r in runs if r["status"] == "COMPLETED"}
        running = [r for r in runs if r["status"] == "RUNNING"]
        return expected <= completed and not running

    await eventually(done, timeout=timeout, what="every cart journey to complete", every=1.0)


async def reconcile(rig: Rig, load: Load, figures: Figures) -> Figures:
    """Fill in `figures` from the acknowledgement log, the store, the peers and Temporal."""
    acked = list(load.acknowledged)
    rows = await rig.pool.fetch(
        "SELECT event_id, count(*) AS n FROM events WHERE event_id = ANY($1::text[]) "
        "GROUP BY event_id",
        acked,
    )
    stored = {r["event_id"]: r["n"] for r in rows}
    figures.events_sent = len(load.events)
    figures.events_acknowledged = len(acked)
    figures.events_acknowledged_as_duplicate = sum(
        1 for s in load.acknowledged.values() if s == "duplicate"
    )
    figures.events_stored = len(stored)
    figures.events_missing = len(set(acked) - set(stored))
    figures.events_duplicated = sum(n - 1 for n in stored.values())
    figures.events_rejected = len(load.rejected)
    # The same logical event twice under different ids cannot be told by id: count the
    # cart updates per cart, which the load sends exactly once each.
    carts = await rig.pool.fetch(
        "SELECT data->>'cart_id' AS cart, stream_id, count(*) AS n FROM events "
        "WHERE type = 'cart.updated' GROUP BY 1, 2"
    )
    figures.events_duplicated += sum(r["n"] - 1 for r in carts)

    outcomes = await rig.pool.fetch(
        "SELECT type, data->>'delivery_id' AS did, count(*) AS n FROM events "
        "WHERE type IN ('message.sent', 'message.in_doubt', 'message.failed') GROUP BY 1, 2"
    )
    sent = {r["did"]: r["n"] for r in outcomes if r["type"] == "message.sent"}
    in_doubt = {r["did"] for r in outcomes if r["type"] == "message.in_doubt"}
    failed = {r["did"] for r in outcomes if r["type"] == "message.failed"}
    peers = rig.peer_deliveries()
    figures.messages_due = load.due
    figures.messages_sent = len(sent)
    figures.messages_in_doubt = len(in_doubt - set(sent))
    figures.messages_failed = len(failed - set(sent) - in_doubt)
    figures.messages_at_peers = sum(peers.values())
    figures.messages_duplicated = sum(n - 1 for n in peers.values() if n > 1) + sum(
        n - 1 for n in sent.values() if n > 1
    )
    received = set(peers)
    # Due and not at a peer: neither sent nor honestly in doubt.
    settled = len(set(sent) | in_doubt)
    figures.messages_missing = max(0, load.due - settled)
    unexplained = received - set(sent) - in_doubt
    if unexplained:
        figures.notes.append(f"{len(unexplained)} peer messages with no outcome event")
    not_received = set(sent) - received
    if not_received:
        figures.notes.append(f"{len(not_received)} message.sent events no peer received")

    runs = await rig.journey_runs()
    per_id = Counter(r["id"] for r in runs)
    figures.journeys_expected = len(load.members)
    figures.journey_runs = len(runs)
    figures.journeys_completed = sum(1 for r in runs if r["status"] == "COMPLETED")
    figures.journeys_stuck = sum(1 for r in runs if r["status"] == "RUNNING")
    figures.journeys_duplicated = sum(n - 1 for n in per_id.values() if n > 1)
    figures.processes_killed = {p.name: p.kills for p in rig.procs.values() if p.kills}
    return figures


def assert_reconciled(figures: Figures, *, in_doubt_allowed: int = 0) -> None:
    """The promises: acknowledged events stored exactly once, due messages at the peers
    exactly once (or honestly recorded in doubt, never re-sent), no journey stuck."""
    f = figures
    problems = []
    if f.events_rejected:
        problems.append(f"{f.events_rejected} events rejected")
    if f.events_missing:
        problems.append(f"{f.events_missing} acknowledged events are not stored")
    if f.events_duplicated:
        problems.append(f"{f.events_duplicated} events stored twice")
    if f.messages_duplicated:
        problems.append(f"{f.messages_duplicated} messages delivered twice")
    if f.messages_missing:
        problems.append(f"{f.messages_missing} due messages have no outcome")
    if f.messages_in_doubt > in_doubt_allowed:
        problems.append(f"{f.messages_in_doubt} messages in doubt (allowed {in_doubt_allowed})")
    if f.messages_failed:
        problems.append(f"{f.messages_failed} messages failed")
    if f.messages_sent + f.messages_in_doubt != f.messages_due:
        problems.append(
            f"sent {f.messages_sent} + in doubt {f.messages_in_doubt} != due {f.messages_due}"
        )
    if f.messages_at_peers < f.messages_sent:
        problems.append(f"peers have {f.messages_at_peers} of {f.messages_sent} sent messages")
    if f.journeys_stuck:
        problems.append(f"{f.journeys_stuck} journeys still running")
    if f.journeys_duplicated:
        problems.append(f"{f.journeys_duplicated} carts started a second journey run")
    if f.journeys_completed != f.journeys_expected:
        problems.append(f"{f.journeys_completed} of {f.journeys_expected} journeys completed")
    problems += [n for n in f.notes if "no outcome" in n or "no peer" in n]
    assert not problems, f"{f.scenario}: " + "; ".join(problems) + "\n" + f.line()
