"""The shapes of ingestion: an incoming event, a batch, and what happened to each event.

These pydantic models are the contract of `POST /v1/events`, the Python client and bulk
import. Validation errors name the field (`events[3].member.phone`) and the reason.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.identity.aliases import normalise_email, normalise_phone, normalise_system

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
# '#' is kept out of client ids: the system derives its own event ids with it.
ID_PATTERN = r"^[^#\s\x00-\x1f\x7f]+$"
RESERVED_TYPES = frozenset({"member.merged", "member.erased"})
"""Types only the system appends (identity merges, erasure)."""

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]


class PushSubscriptionIn(BaseModel):
    """A Web Push subscription (`endpoint` + `keys`) or an FCM/APNs device `token`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webpush", "fcm", "apns"]
    endpoint: str | None = Field(default=None, max_length=2048, pattern=r"^https://\S+$")
    keys: dict[str, Annotated[str, Field(max_length=512)]] | None = None
    token: str | None = Field(default=None, min_length=1, max_length=4096, pattern=r"^\S+$")

    @model_validator(mode="after")
    def _complete(self) -> PushSubscriptionIn:
        if self.type == "webpush":
            if not self.endpoint:
                raise ValueError("a webpush subscription needs an https endpoint")
            missing = {"p256dh", "auth"} - set(self.keys or {})
            if missing:
                raise ValueError(f"a webpush subscription needs keys {sorted(missing)}")
        elif not self.token:
            raise ValueError(f"an {self.type} subscription needs a token")
        return self

    @property
    def identity(self) -> str:
        return self.endpoint or self.token or ""


class MemberIn(BaseModel):
    """Who the event is about: a member `id`, or aliases the engine resolves to one."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40, description="E.164, e.g. +14155550123")
    device_id: Identifier | None = None
    external_ids: dict[str, Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=dict,
        max_length=16,
        description="Ids in other systems, by system name, e.g. {'shopify': '8123'}.",
    )
    push_subscriptions: list[PushSubscriptionIn] = Field(default_factory=list, max_length=10)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return None if v is None else normalise_email(v)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else normalise_phone(v)

    @field_validator("external_ids")
    @classmethod
    def _systems(cls, v: dict[str, str]) -> dict[str, str]:
        return {normalise_system(k): value for k, value in v.items()}

    @model_validator(mode="after")
    def _named(self) -> MemberIn:
        if not (self.id or self.email or self.phone or self.device_id or self.external_ids):
            raise ValueError(
                "member needs an id or at least one alias (email, phone, device_id, external_ids)"
            )
        return self


class EventIn(BaseModel):
    """One event as a client sends it."""

    model_config = ConfigDict(extra="forbid")

    event_id: Identifier = Field(description="The client's idempotency key for this event.")
    type: str = Field(
        max_length=100,
        pattern=EVENT_TYPE_PATTERN,
        description="Lowercase dotted name, e.g. cart.updated.",
    )
    member: MemberIn
    occurred_at: AwareDatetime = Field(description="When it happened, with a time zone.")
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties")
    @classmethod
    def _storable(cls, v: dict[str, Any]) -> dict[str, Any]:
        _check_json(v, "properties")
        return v


def _check_json(value: Any, path: str) -> None:
    """Refuse what PostgreSQL's jsonb cannot hold: NUL characters and non-finite numbers."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} contains a NUL character")
    elif isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                raise ValueError(f"a key in {path} contains a NUL character")
            if not isinstance(v, int):
                _check_json(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if not isinstance(v, int):
                _check_json(v, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} holds a non-finite number")


class EventBatchIn(BaseModel):
    """The body of `POST /v1/events`."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. events[2].member.phone.")
    reason: str


class EventOutcome(BaseModel):
    index: int = Field(description="Position of the event in the request.")
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    member_id: str | None = None
    global_position: int | None = None
    errors: list[FieldError] = Field(default_factory=list)


class IngestResult(BaseModel):
    """The answer to a batch: one outcome per event, in request order."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventOutcome]


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """pydantic errors as `FieldError`s with dotted/indexed paths."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        path = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
        reason = str(err["msg"]).removeprefix("Value error, ")
        out.append(FieldError(field=path or "body", reason=reason))
    return out
