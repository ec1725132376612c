"""The answer to an ingestion request: one outcome per event, with the errors of a rejected
one. The Python client reads these too, so this module needs nothing of the server."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. events[2].member.phone.")
    reason: str

    @field_validator("field", "reason")
    @classmethod
    def _encodable(cls, v: str) -> str:
        # A field name can echo a client's key; a lone surrogate in it must not break the answer.
        return v if v.isascii() else v.encode("utf-8", "backslashreplace").decode()


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
