"""The shapes of ingestion: an incoming event, a batch, and what happened to each event.

These pydantic models are the contract of `POST /v1/events`, the Python client and bulk
import. Validation errors name the field (`events[3].member.phone`) and the reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from journeyman.engine.identity.aliases import normalise_email, normalise_phone, normalise_system
from journeyman.engine.ingest.answers import EventOutcome as EventOutcome
from journeyman.engine.ingest.answers import FieldError as FieldError
from journeyman.engine.ingest.answers import IngestResult as IngestResult
from journeyman.engine.ingest.storable import Timestamp, json_problem
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# EventOutcome, FieldError and IngestResult live in `ingest_answers`, which the Python client
# reads without the server's code; they are re-exported here.

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
# Text without control characters (NUL included), for ids of other systems.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]


class PushSubscriptionIn(BaseModel):
    """A Web Push subscription (`endpoint` + `keys`) or an FCM/APNs device `token`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webpush", "fcm", "apns"]
    endpoint: str | None = Field(
        default=None, max_length=2048, pattern=r"^https://[^\s\x00-\x1f\x7f]+$"
    )
    keys: (
        dict[
            Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")],
            Annotated[str, Field(max_length=512, pattern=TEXT_PATTERN)],
        ]
        | None
    ) = None
    token: str | None = Field(
        default=None, min_length=1, max_length=4096, pattern=r"^[^\s\x00-\x1f\x7f]+$"
    )

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
    external_ids: dict[
        str, Annotated[str, Field(min_length=1, max_length=256, pattern=TEXT_PATTERN)]
    ] = Field(
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
    occurred_at: Timestamp = Field(
        description="When it happened: ISO 8601 with a time zone (Z or an offset). Accepted "
        "from JOURNEYMAN_INGEST_EARLIEST_OCCURRED_AT (default 1970-01-01T00:00:00Z) to now "
        "plus JOURNEYMAN_INGEST_FUTURE_SKEW_SECONDS; naive times and Unix numbers are refused."
    )
    properties: dict[str, Any] = Field(default_factory=dict)


def storage_errors(event: EventIn, index: int) -> list[FieldError]:
    """What in an event's properties the store cannot hold or read back (NUL characters,
    lone surrogates, non-finite numbers, integers past Python's digit limit). Checked only
    when the store refuses a batch: it is rare, and walking every event would cost more
    than the check saves."""
    found = json_problem(event.properties, f"events[{index}].properties")
    if found is None:
        return []
    field, reason = found
    return [FieldError(field=field, reason=reason)]


class EventBatchIn(BaseModel):
    """The body of `POST /v1/events`."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


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
        kind = err["type"]
        if kind == "string_pattern_mismatch" and "\x00" in str(err["input"]):
            reason = "contains a NUL character (\\u0000)"
        elif kind == "string_pattern_mismatch" and err["loc"][-1:] == ("email",):
            reason = f"{err['input']!r} is not an email address (expected name@domain.tld)"
        elif kind == "string_unicode":
            reason = "contains a lone surrogate (such as \\ud800), which is not Unicode text"
        elif kind == "timezone_aware":
            reason = (
                "needs a time zone, e.g. 2026-01-31T09:30:00Z or 2026-01-31T10:30:00+01:00 "
                "(naive date-times are not accepted)"
            )
        out.append(FieldError(field=path or "body", reason=reason))
    return out
