"""Settings from the environment (prefix `JOURNEYMAN_`) or a `.env` file.

With no `JOURNEYMAN_DATABASE_URL`, the embedded PostgreSQL under the data directory is used;
with no `JOURNEYMAN_TEMPORAL_ADDRESS`, the embedded Temporal dev server is.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

from journeyman.engine.core.delivery_settings import DeliverySettings
from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOURNEYMAN_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql:// URL of the database; empty means the embedded PostgreSQL.",
    )
    analytics_database_url: str | None = Field(
        default=None,
        description="postgresql:// URL the journey reports and the dashboard read through (a "
        "read replica, or a read-only role); they never write. Empty means the main database.",
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of Temporal; empty means the embedded dev server."
    )
    temporal_namespace: str = "default"
    task_queue: str = "journeyman"
    worker_build_id: str | None = Field(
        default=None,
        description="Run the worker as this build of a Temporal worker deployment (worker "
        "versioning): new runs start on the deployment's current build, PINNED journeys stay "
        "on the build they started on. Make a build current with "
        "`journeyman deployment set-current <build-id>`. Unset: an unversioned worker.",
    )
    worker_deployment: str | None = Field(
        default=None,
        pattern=r"^[^.]*$",
        description="Name of the worker deployment the build belongs to (no '.'); "
        "empty means the task queue's name. Used only with worker_build_id.",
    )
    data_dir: Path = Field(default=Path(".journeyman"), description="Where embedded state lives.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret for blind indexes, signed links and key encryption. "
        "When unset, one is generated once and kept in the data directory.",
    )
    log_http_requests: bool = Field(
        default=False,
        description="Log each outgoing HTTP request of the HTTP client libraries (httpx, …), "
        "with its URL cut to the origin. Off by default: some providers put credentials in "
        "the URL.",
    )
    db_pool_min: int = 2
    db_pool_max: int = 10

    # --- ingestion (engine/ingest/ingestor.py, engine/api/) ---
    ingest_max_batch_events: int = Field(
        default=1000, description="Most events one POST /v1/events (or import batch) may carry."
    )
    ingest_max_body_bytes: int = Field(
        default=1_048_576,
        description="Largest accepted HTTP request body, in bytes (a gzip body: compressed "
        "and inflated).",
    )
    ingest_future_skew_seconds: float = Field(
        default=300.0, description="How far in the future an event's occurred_at may be."
    )
    ingest_earliest_occurred_at: AwareDatetime = Field(
        default=dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        ge=dt.datetime(1, 1, 2, tzinfo=dt.UTC),
        description="The earliest occurred_at ingestion accepts (ISO 8601 with a time zone); "
        "older events, and timestamps the store could not read back, are refused with 422.",
    )
    ingest_rate_per_second: float = Field(
        default=100.0,
        description="Ingestion requests per second each API key may make (a token bucket per "
        "key, per API process); beyond it the API answers 429 with Retry-After. 0 disables it.",
    )
    ingest_rate_burst: float = Field(
        default=200.0,
        description="Ingestion requests a key may make at once before the rate applies.",
    )
    ingest_max_in_flight: int = Field(
        default=4,
        ge=1,
        description="Ingestion requests one API process works on at once (keep it at or "
        "below JOURNEYMAN_DB_POOL_MAX); more wait in a queue.",
    )
    ingest_max_queued: int = Field(
        default=32,
        ge=0,
        description="Ingestion requests one API process lets wait for a free slot; beyond "
        "them it answers 503 with Retry-After at once, so a client backs off instead of "
        "waiting behind a queue it cannot see.",
    )
    ingest_max_queue_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long a queued ingestion request may wait for a slot before it is "
        "answered 503 with Retry-After (it was not stored); 0 waits without limit. Bounds "
        "the latency of accepted requests whatever the load.",
    )
    ingest_retry_after_seconds: int = Field(
        default=1, ge=1, description="The Retry-After of a 503 from a full ingestion queue."
    )
    ingest_clear_properties: list[str] = Field(
        default=[
            # trigger keys of the built-in journeys (cart_recovery, post_purchase_survey,
            # double_opt_in); `same_key` exits and goals compare them too
            "cart_id",
            "order_id",
            "request_id",
            # cart_recovery: its "cart emptied" exit and the reminder's cart lines
            "items",
            # order amounts: profile monetary value, conversion value, survey template
            "total",
            "revenue",
            "value",
            "amount",
            # consent, unsubscribe and bounce events: channel, purpose, answer, bounce kind
            "channel",
            "purpose",
            "granted",
            "bounce_type",
        ],
        description="Event properties stored in clear: the non-personal keys journeys, "
        "analytics and the profile read. Every other property (and identify `traits`, "
        "always) is sealed under the member's data key and becomes unreadable on erasure. "
        "Add the trigger key of a journey of your own here, e.g. "
        'JOURNEYMAN_INGEST_CLEAR_PROPERTIES=\'["cart_id", …, "booking_id"]\'.',
    )
    api_max_json_depth: int = Field(
        default=32, description="Deepest nesting of arrays and objects accepted in a JSON body."
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8787
    api_run_projector: bool = Field(
        default=True,
        description="Run the member profile and journey analytics projections inside the API "
        "process.",
    )
    # --- member profile projection (engine/profiles/) ---
    activity_types: list[str] = Field(
        default=[
            "member.registered",
            "page.viewed",
            "app.opened",
            "product.viewed",
            "cart.updated",
            "order.placed",
            "message.clicked",
        ],
        description="Event types that count as member activity (inactivity, lifecycle stage).",
    )
    custom_event_types: list[str] = Field(
        default_factory=list,
        description="The shop's own event types that journeys may name, beyond the documented "
        "ones and those plugins declare (e.g. '[\"quiz.completed\"]'); a journey naming an "
        "unknown type stops `journeyman journeys` and the worker.",
    )
    lifecycle_new_days: int = Field(default=14, description="'new' while first seen this recently.")
    lifecycle_at_risk_days: int = Field(
        default=30, description="No activity for this long: at risk."
    )
    lifecycle_lapsed_days: int = Field(default=60, description="No activity for this long: lapsed.")
    lifecycle_churned_days: int = Field(default=180, description="No activity this long: churned.")
    rfm_recency_days: list[int] = Field(
        default=[14, 30, 90, 180],
        description="Days since the last order that bound recency scores 5, 4, 3, 2 (else 1).",
    )
    rfm_frequency_orders: list[int] = Field(
        default=[2, 3, 5, 10], description="Order counts from which frequency is 2, 3, 4, 5."
    )
    rfm_monetary_values: list[float] = Field(
        default=[50.0, 150.0, 500.0, 1500.0],
        description="Monetary values from which the monetary score is 2, 3, 4, 5.",
    )
    # --- channels and plugins (channels/, plugins/) ---
    channels: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-channel settings, by channel name: JOURNEYMAN_CHANNELS__<NAME>__<FIELD>, "
        "e.g. JOURNEYMAN_CHANNELS__EMAIL__HOST. A channel missing required settings is not "
        "configured; in development its messages go to the outbox channel.",
    )
    load_plugins: str | None = Field(
        default=None,
        description="Comma-separated plugin (entry point or distribution) names to load; "
        "unset loads all installed plugins, empty loads none.",
    )

    # --- delivery (engine/delivery/) ---
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings,
        description="Delivery policies, templates and links: JOURNEYMAN_DELIVERY__<FIELD>, "
        "e.g. JOURNEYMAN_DELIVERY__FREQUENCY_CAP=3.",
    )

    # --- journeys (workflows/, engine/routing/dispatcher.py, engine/routing/scheduler.py) ---
    journeys: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-journey settings overrides, by journey name: "
        'JOURNEYMAN_JOURNEYS=\'{"cart_recovery": {"quiet_period": 5}}\' (durations in seconds). '
        "A run keeps the settings it started with.",
    )
    dispatcher_partitions: int = Field(
        default=1, description="How many member-hash partitions the dispatcher is split into."
    )
    dispatcher_batch_size: int = Field(default=500, description="Events per dispatcher batch.")
    inactivity_scan_every_seconds: float = Field(
        default=3600.0, description="How often the inactivity scan schedule runs."
    )

    # --- readers of the store: dead letters and liveness (engine/core/parking.py) ---
    dead_letter_attempts: int = Field(
        default=3,
        ge=1,
        description="How many times a subscriber (profile projection, dispatcher) tries an "
        "event whose processing fails before parking it as a dead letter and going on. "
        "An event that cannot be decoded is parked at once; an outage (database or Temporal "
        "unreachable) never counts.",
    )
    long_transaction_warn_seconds: float = Field(
        default=60.0,
        description="Health warns when a transaction on the PostgreSQL server has been open "
        "this long: it holds back every subscriber of the store (see docs/operations.md).",
    )

    def resolved_secret(self) -> bytes:
        """The server secret: configured, or generated once into `<data_dir>/secret.key`."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        import secrets

        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
