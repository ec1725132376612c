"""Prometheus metrics and health endpoints for every Journeyman process.

Two kinds of figures:

* **Process metrics**, counted where the work happens: events ingested by type and append
  latency (API), journey starts and signals sent (dispatcher), deliveries by channel and
  outcome, policy suppressions and provider latency (worker).
* **Store metrics**, read from the database by `StoreMetrics` (the API refreshes them every
  few seconds): journeys running, entered, exited and converted; messages by channel and
  outcome as recorded in the store; dispatcher lag in events and seconds per partition.
  They are the same whichever process serves them, so one scrape of the API's `/metrics`
  shows the whole system.

Worker, dispatcher and other long-running parts serve `/metrics` and `/healthz` on their own
port (`JOURNEYMAN_METRICS_PORT`, see `serve_process`); the worker also exposes Temporal's SDK
runtime metrics (`temporal_runtime_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ process metrics
EVENTS_INGESTED = Counter(
    "journeyman_events_ingested",
    "Events accepted by ingestion (HTTP API, bulk import), by event type.",
    ["type"],
)
APPEND_SECONDS = Histogram(
    "journeyman_append_seconds",
    "Latency of one ingestion append transaction (resolve identities, append, commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INGEST_RETRIES = Counter(
    "journeyman_ingest_retries",
    "Ingest batches planned again after losing an identity race, by reason (exception).",
    ["reason"],
)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30)
INGEST_REQUEST_SECONDS = Histogram(
    "journeyman_ingest_request_seconds",
    "Accepted ingestion requests, from the API's first look at the request (before its "
    "body is read) to the end of the answer: the server's share of a client's latency.",
    buckets=_REQUEST_BUCKETS,
)
INGEST_QUEUE_SECONDS = Histogram(
    "journeyman_ingest_queue_seconds",
    "Accepted ingestion requests: time spent waiting for an admission slot.",
    buckets=_REQUEST_BUCKETS,
)
INGEST_REFUSED = Counter(
    "journeyman_ingest_refused",
    "Ingestion requests answered 503 because the API process had too many in flight.",
)
SIGNALS_SENT = Counter(
    "journeyman_signals_sent",
    "Events the dispatcher handed to Temporal: kind=start (signal-with-start) or signal.",
    ["journey", "kind"],
)
DELIVERIES = Counter(
    "journeyman_deliveries",
    "Outcomes of the deliver activity, by channel and outcome (sent, suppressed, deferred, "
    "failed, in_doubt).",
    ["channel", "outcome"],
)
POLICY_SUPPRESSIONS = Counter(
    "journeyman_policy_suppressions",
    "Sends stopped or deferred by a delivery policy, by policy (consent, cap, quiet_hours, …).",
    ["policy"],
)
RECONCILIATIONS = Counter(
    "journeyman_reconciliations",
    "Lookups of ambiguous sends at the provider, by channel and result (found, not_found, "
    "unknown, unsupported).",
    ["channel", "result"],
)

PROVIDER_SECONDS = Histogram(
    "journeyman_provider_seconds",
    "Latency of a channel's provider call (one send), by channel.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

DEAD_LETTERS_PARKED = Counter(
    "journeyman_dead_letters_parked",
    "Events a subscriber parked as dead letters and went on without, by consumer and reason "
    "(undecodable, failed).",
    ["consumer", "reason"],
)


def record_dead_letter(consumer: str, reason: str) -> None:
    """Count one parked event (`reason`: undecodable or failed)."""
    DEAD_LETTERS_PARKED.labels(consumer, reason).inc()


def record_ingested(types: Iterable[str]) -> None:
    """Count accepted events by type."""
    counts: dict[str, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    for t, n in counts.items():
        EVENTS_INGESTED.labels(t).inc(n)


def record_routed(event: Any, workflow_id: str, kind: str) -> None:
    """The dispatcher's `on_routed` callback: one start or signal handed to Temporal."""
    parts = workflow_id.split("/")
    journey = parts[1] if len(parts) > 2 and parts[0] == "journey" else "unknown"
    SIGNALS_SENT.labels(journey, kind).inc()


def record_delivery(channel: str | None, outcome: str, reason: str = "") -> None:
    """Count one deliver outcome; a suppression or deferral also counts its policy."""
    DELIVERIES.labels(channel or "none", outcome).inc()
    if outcome in ("suppressed", "deferred") and reason != "holdout":
        POLICY_SUPPRESSIONS.labels(policy_of(reason)).inc()


def policy_of(reason: str) -> str:
    """A short policy label from a suppression reason ('frequency cap reached' -> 'cap')."""
    text = reason.lower()
    for word, label in (
        ("quiet", "quiet_hours"),
        ("cap", "cap"),
        ("frequency", "cap"),
        ("unsubscrib", "unsubscribed"),
        ("consent", "consent"),
        ("suppress", "suppression"),
        ("erased", "erased"),
        ("contact", "no_contact"),
    ):
        if word in text:
            return label
    return "other"


# ------------------------------------------------------------------ store metrics
_STORE_QUERIES = {
    "journeys": """
        SELECT data->>'journey' AS journey, type, count(*) AS n FROM events
        WHERE type IN ('journey.entered', 'journey.exited', 'journey.converted')
        GROUP BY 1, 2""",
    "running": """
        SELECT journey, count(*) FILTER (WHERE running) AS n FROM journey_instances
        GROUP BY 1""",
    "messages": """
        SELECT coalesce(data->>'channel', 'none') AS channel, type, count(*) AS n FROM events
        WHERE type IN ('message.sent', 'message.failed', 'message.suppressed',
                       'message.deferred', 'message.delivered', 'message.bounced',
                       'message.clicked', 'message.opened')
        GROUP BY 1, 2""",
    "lag": """
        SELECT c.name, c.partition, c.partitions,
               (SELECT count(*) FROM events e WHERE e.category = 'member'
                  AND e.global_position > c.position) AS events,
               (SELECT extract(epoch FROM now() - min(e.recorded_at)) FROM events e
                 WHERE e.category = 'member' AND e.global_position > c.position) AS seconds
        FROM subscription_checkpoints c""",
    "dead_letters": """
        SELECT consumer, status, count(*) AS n FROM dead_letters GROUP BY 1, 2""",
}

# The oldest transaction holding a transaction id anywhere on the server (every database:
# Temporal's too, when it shares the server), or prepared and not yet committed. It is what
# the store's gap-safe readers wait for (`pg_snapshot_xmin`). Seeing other roles' sessions
# needs the `pg_read_all_stats` role (or `pg_monitor`).
_OLDEST_TRANSACTION = """
SELECT * FROM (
    SELECT extract(epoch FROM clock_timestamp() - xact_start)::float8 AS seconds, pid,
           datname AS database, application_name AS application, state
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
    UNION ALL
    SELECT extract(epoch FROM clock_timestamp() - prepared)::float8, NULL, database,
           'prepared transaction ' || gid, 'prepared'
    FROM pg_prepared_xacts
) t ORDER BY seconds DESC LIMIT 1
"""


async def oldest_transaction(pool: Any) -> dict[str, Any] | None:
    """The oldest open transaction that holds back the store's readers, or None."""
    row = await pool.fetchrow(_OLDEST_TRANSACTION)
    return None if row is None else dict(row)


def long_transaction_warning(oldest: dict[str, Any] | None, limit: float) -> str | None:
    """A health warning when `oldest` has been open longer than `limit` seconds."""
    if oldest is None or oldest["seconds"] < limit:
        return None
    who = f"pid {oldest['pid']}" if oldest["pid"] is not None else "a prepared transaction"
    return (
        f"a transaction has been open for {oldest['seconds']:.0f} s ({who}, database "
        f"{oldest['database']}, application {oldest['application'] or '?'}, "
        f"{oldest['state']}): every subscriber of the store waits for it to end"
    )


@dataclass
class StoreSnapshot:
    at: float = 0.0
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class StoreMetrics(Collector):
    """Gauges and counters read from the store; `refresh(pool)` updates them."""

    def __init__(self) -> None:
        self.snapshot = StoreSnapshot()

    async def refresh(self, pool: Any) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for name, sql in _STORE_QUERIES.items():
            try:
                rows[name] = [dict(r) for r in await pool.fetch(sql)]
            except Exception as exc:  # a missing table before migrations: report nothing
                log.debug("store metric %s unavailable: %s", name, exc)
                rows[name] = []
        try:
            oldest = await oldest_transaction(pool)
            rows["oldest_transaction"] = [oldest] if oldest else []
        except Exception as exc:
            log.debug("oldest transaction unavailable: %s", exc)
            rows["oldest_transaction"] = []
        self.snapshot = StoreSnapshot(time.time(), rows)

    async def refresh_forever(self, pool: Any, every: float = 5.0) -> None:
        while True:
            try:
                await self.refresh(pool)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refreshing store metrics failed")
            await asyncio.sleep(every)

    def collect(self) -> Iterator[Any]:
        rows = self.snapshot.rows
        kinds = {"journey.entered": "entered", "journey.exited": "exited"}
        entered = CounterMetricFamily(
            "journeyman_journeys_entered",
            "Journey entries recorded in the store.",
            labels=["journey"],
        )
        exited = CounterMetricFamily(
            "journeyman_journeys_exited", "Journey exits recorded in the store.", labels=["journey"]
        )
        converted = CounterMetricFamily(
            "journeyman_journeys_converted",
            "Journey conversions recorded in the store.",
            labels=["journey"],
        )
        for r in rows.get("journeys", []):
            family = {"entered": entered, "exited": exited}.get(kinds.get(r["type"], ""), converted)
            family.add_metric([r["journey"] or "unknown"], r["n"])
        yield from (entered, exited, converted)
        running = GaugeMetricFamily(
            "journeyman_journeys_running", "Journey runs in progress.", labels=["journey"]
        )
        for r in rows.get("running", []):
            running.add_metric([r["journey"]], r["n"])
        yield running
        messages = CounterMetricFamily(
            "journeyman_messages",
            "Message events in the store by channel and type (sent, failed, suppressed, …).",
            labels=["channel", "outcome"],
        )
        for r in rows.get("messages", []):
            messages.add_metric([r["channel"], r["type"].removeprefix("message.")], r["n"])
        yield messages
        lag_events = GaugeMetricFamily(
            "journeyman_subscription_lag_events",
            "Member events appended after a subscription's checkpoint (the dispatcher is "
            "subscription journey-dispatcher).",
            labels=["subscription", "partition"],
        )
        lag_seconds = GaugeMetricFamily(
            "journeyman_subscription_lag_seconds",
            "Age of the oldest member event after a subscription's checkpoint (0 when caught up).",
            labels=["subscription", "partition"],
        )
        for r in rows.get("lag", []):
            labels = [r["name"], f"{r['partition']}/{r['partitions']}"]
            lag_events.add_metric(labels, r["events"])
            lag_seconds.add_metric(labels, float(r["seconds"] or 0.0))
        yield lag_events
        yield lag_seconds
        dead = GaugeMetricFamily(
            "journeyman_dead_letters",
            "Dead letters in the store by consumer and status (parked, retried, dropped).",
            labels=["consumer", "status"],
        )
        for r in rows.get("dead_letters", []):
            dead.add_metric([r["consumer"], r["status"]], r["n"])
        yield dead
        oldest = rows.get("oldest_transaction", [])
        yield GaugeMetricFamily(
            "journeyman_oldest_transaction_seconds",
            "Age of the oldest open transaction on the PostgreSQL server (any database) that "
            "holds a transaction id: every subscriber of the store waits for it (0: none).",
            value=float(oldest[0]["seconds"]) if oldest else 0.0,
        )


STORE_METRICS = StoreMetrics()
_registered = False


def register_store_metrics(registry: CollectorRegistry = REGISTRY) -> StoreMetrics:
    """Add the store metrics to the registry once per process."""
    global _registered
    if not _registered:
        registry.register(STORE_METRICS)
        _registered = True
    return STORE_METRICS


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)


async def watch_long_transactions(
    pool: Any, health: Health, limit: float, every: float = 10.0, *, once: bool = False
) -> None:
    """Keep `health.details["warnings"]["long_transaction"]` current (a warning, not a
    problem: the part itself is fine, it is waiting)."""
    while True:
        warnings = health.details.setdefault("warnings", {})
        try:
            warning = long_transaction_warning(await oldest_transaction(pool), limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            warning = f"cannot read pg_stat_activity: {exc}"
        if warning:
            warnings["long_transaction"] = warning
        else:
            warnings.pop("long_transaction", None)
        if once:
            return
        await asyncio.sleep(every)


# ------------------------------------------------------------------ health
@dataclass
class Health:
    """A process's health: its part name, a status, and named checks (callables that return
    None when fine or a string saying what is wrong)."""

    part: str
    status: str = "starting"
    started: float = field(default_factory=time.time)
    checks: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def report(self) -> tuple[bool, dict[str, Any]]:
        problems = {}
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                problems[name] = problem
        ok = self.status == "ok" and not problems
        return ok, {
            "part": self.part,
            "status": "ok" if ok else ("starting" if self.status == "starting" else "failing"),
            "uptime_seconds": round(time.time() - self.started, 1),
            "problems": problems,
            **self.details,
        }


HEALTH: Health | None = None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _wsgi_app(health: Health) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            body = exposition()
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
            return [body]
        if path in ("/healthz", "/health"):
            ok, report = health.report()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps(report).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]

    return app


class _ThreadedServer(WSGIServer):
    daemon_threads = True


def serve_process(part: str, port: int | None, host: str = "127.0.0.1") -> Health:
    """Serve `/metrics` and `/healthz` for this process on `host:port` (in a thread) and
    return its `Health`, which the part marks `ok` once running. With no port, nothing is
    served, but the `Health` is still returned."""
    global HEALTH
    health = Health(part)
    HEALTH = health
    if port:
        server = make_server(
            host, port, _wsgi_app(health), server_class=_ThreadedServer, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, name=f"{part}-metrics", daemon=True).start()
        log.info("%s: metrics and health on http://%s:%d", part, host, port)
    return health


def temporal_runtime_metrics(port: int | None, host: str = "127.0.0.1") -> str | None:
    """Make this process's default Temporal runtime export the SDK's metrics (workflow and
    activity task latencies, slots, polls, …) in Prometheus format on `host:port`. Call it
    before the first Temporal client is created. Returns the URL, or None without a port."""
    if not port:
        return None
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}"))),
        error_if_already_set=False,
    )
    return f"http://{host}:{port}/metrics"


@contextlib.contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        (histogram.labels(*labels) if labels else histogram).observe(time.perf_counter() - started)


class ProcessMetricsSettings(BaseSettings):
    """Where a process serves its metrics: `JOURNEYMAN_METRICS_PORT` (`/metrics`, `/healthz`)
    and, for the worker, `JOURNEYMAN_TEMPORAL_METRICS_PORT` (Temporal SDK metrics)."""

    model_config = SettingsConfigDict(env_prefix="JOURNEYMAN_", extra="ignore")

    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    temporal_metrics_port: int | None = None


def serve_part(part: str, *, temporal: bool = False) -> Health:
    """What a long-running part calls at start: serve its `/metrics` and `/healthz` (when
    `JOURNEYMAN_METRICS_PORT` is set) and, with `temporal`, export Temporal SDK metrics
    (when `JOURNEYMAN_TEMPORAL_METRICS_PORT` is set). The part counts as healthy while its
    process runs; `journeyman up` adds its own readiness checks."""
    s = ProcessMetricsSettings()
    health = serve_process(part, s.metrics_port, s.metrics_host)
    if temporal:
        url = temporal_runtime_metrics(s.temporal_metrics_port, s.metrics_host)
        if url:
            health.details["temporal_metrics"] = url
    health.status = "ok"
    return health
