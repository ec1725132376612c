"""The shapes of ingestion: an incoming event, a batch, and what happened to each event.

These pydantic models are the contract of `POST /v1/events`, the Python client and bulk
import. Validation errors name the field (`events[3].member.phone`) and the reason.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
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
RESERVED_TYPES = frozenset(
    {
        "member.merged",
        "member.erased",
        # Journey and segment events are the engine's own record: a client posting one could
        # start a journey or claim a conversion without the engine having decided it.
        "journey.entered",
        "journey.exited",
        "journey.converted",
        "journey.message_withheld",
        "segment.entered",
        "segment.exited",
    }
)
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
    # Normalised by `normalise_email` (look-alikes never link to another person).
    email: Annotated[str, Field(max_length=330), AfterValidator(normalise_email)] | None = None
    phone: str | None = Field(default=None, max_length=40, description="E.164, e.g. +14155550123")
    device_id: Identifier | None = None
    external_ids: dict[str, Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=dict,
        max_length=16,
        description="Ids in other systems, by system name, e.g. {'shopify': '8123'}.",
    )
    push_subscriptions: list[PushSubscriptionIn] = Field(default_factory=list, max_length=10)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return None if v is None else normalise_phone(v)

    @field_validator("external_ids")
    @classmethod
    def _systems(cls, v: dict[str, str]) -> dict[str, str]:
        return {normalise_system(k): value for k, value in v.items()} if v else v

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


def _storable(value: Any) -> bool:
    """True when PostgreSQL's jsonb can hold `value`: no NUL characters, finite numbers."""
    t = type(value)
    if t is str:
        return "\x00" not in value
    if t is dict:
        for k, v in value.items():
            if "\x00" in k:
                return False
            tv = type(v)
            if tv is str:
                if "\x00" in v:
                    return False
            elif tv is not int and tv is not bool and v is not None and not _storable(v):
                return False
        return True
    if t is list:
        return all(_storable(v) for v in value)
    if t is float:
        return math.isfinite(value)
    return True


def storage_errors(event: EventIn, index: int) -> list[FieldError]:
    """What in an event's properties PostgreSQL's jsonb cannot store (NUL characters,
    non-finite numbers). Checked only when the store refuses a batch: it is rare, and
    walking every event would cost more than the check saves."""
    try:
        _check_json(event.properties, "properties")
    except ValueError as exc:
        return [FieldError(field=f"events[{index}].properties", reason=str(exc))]
    return []


def _check_json(value: Any, path: str) -> None:
    """Raise a ValueError naming where `value` holds something jsonb cannot store."""
    if _storable(value):
        return
    if isinstance(value, str):
        raise ValueError(f"{path} contains a NUL character")
    if isinstance(value, float):
        raise ValueError(f"{path} holds a non-finite number")
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                raise ValueError(f"a key in {path} contains a NUL character")
            _check_json(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]")


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
        if err["type"] == "string_pattern_mismatch" and err["loc"][-1:] == ("email",):
            reason = f"{err['input']!r} is not an email address (expected name@domain.tld)"
        out.append(FieldError(field=path or "body", reason=reason))
    return out
