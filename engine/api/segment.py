"""Segment-compatible endpoints: `POST /v1/track`, `/v1/identify`, `/v1/batch`.

A system wired to Segment's (or RudderStack's) HTTP tracking API can point at Journeyman
unchanged: the write key is a Journeyman API key with the `ingest` scope (HTTP Basic, key
as user name), and payloads are mapped onto Journeyman events (see docs/ingestion.md,
"Segment mapping").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.ingest import Ingestor
from engine.ingest_models import EVENT_TYPE_PATTERN, FieldError, IngestResult
from engine.keys import ApiKey

from .auth import require
from .body import parse_json, read_body
from .errors import ERROR_RESPONSES, ApiError, ErrorBody
from .events import check_count

router = APIRouter()

SEGMENT_EVENTS = {
    "order completed": "order.placed",
    "order refunded": "order.refunded",
    "product viewed": "product.viewed",
    "product added": "cart.updated",
    "product removed": "cart.updated",
    "cart viewed": "cart.viewed",
    "checkout started": "checkout.started",
    "signed up": "member.registered",
    "application opened": "app.opened",
    "application installed": "app.installed",
}
"""Segment e-commerce / lifecycle spec names with a Journeyman equivalent."""

_TYPE_RE = re.compile(EVENT_TYPE_PATTERN)
_CONTACT_TRAITS = ("email", "phone")
# Journeyman field -> the Segment field a client should look at.
_FIELD_NAMES = {
    "properties.segment_event": "event",
    "properties.traits": "traits",
    "event_id": "messageId",
    "type": "event",
    "occurred_at": "timestamp",
    "member.id": "userId",
    "member.device_id": "anonymousId",
    "member.email": "traits.email",
    "member.phone": "traits.phone",
    "member": "userId",
}


class SegmentCall(BaseModel):
    """A Segment HTTP tracking API call (only the fields Journeyman uses are listed)."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(default=None, description="track, identify, page, screen, alias")
    userId: str | int | None = None
    anonymousId: str | int | None = None
    previousId: str | int | None = None
    event: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = None
    messageId: str | None = None


class SegmentBatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[SegmentCall]
    context: dict[str, Any] | None = None


class SegmentResult(IngestResult):
    success: bool = Field(description="Segment's field: true when nothing was rejected.")


def event_type(name: str) -> str:
    """A Segment event name as a Journeyman type: spec names map to ours, dotted lowercase
    names pass through, anything else becomes `custom.<snake_case>`."""
    known = SEGMENT_EVENTS.get(name.strip().lower())
    if known:
        return known
    if _TYPE_RE.match(name) and len(name) <= 100:
        return name
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_") or "event"
    if not slug[0].isalpha():
        slug = "e_" + slug
    return f"custom.{slug[:80]}"


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _message_id(call: dict[str, Any]) -> str:
    given = call.get("messageId")
    if isinstance(given, str) and given and "#" not in given and len(given) <= 128:
        return given
    canonical = json.dumps(call, sort_keys=True, separators=(",", ":"), default=str)
    return "seg-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def to_event(
    call: dict[str, Any], kind: str, now: dt.datetime
) -> dict[str, Any] | list[FieldError]:
    """Map one Segment call onto a Journeyman event (a plain dict, validated later)."""
    for name in ("userId", "anonymousId", "previousId"):
        value = call.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            return [FieldError(field=name, reason="must be a string or an integer")]
    context = call.get("context") if isinstance(call.get("context"), dict) else {}
    traits = call.get("traits") if isinstance(call.get("traits"), dict) else None
    if traits is None and isinstance(context.get("traits"), dict):
        traits = context["traits"]
    traits = dict(traits or {})
    member: dict[str, Any] = {}
    user_id, anonymous_id = _str(call.get("userId")), _str(call.get("anonymousId"))
    if user_id:
        member["id"] = user_id
    if anonymous_id:
        member["device_id"] = anonymous_id
    for trait in _CONTACT_TRAITS:
        value = traits.pop(trait, None)
        if isinstance(value, str) and value:
            member[trait] = value
    properties: dict[str, Any] = (
        dict(call["properties"]) if isinstance(call.get("properties"), dict) else {}
    )
    if kind == "track":
        name = call.get("event")
        if not isinstance(name, str) or not name.strip():
            return [FieldError(field="event", reason="a track call needs an event name")]
        type_ = event_type(name)
        if type_ != name:
            properties.setdefault("segment_event", name)
    elif kind == "identify":
        type_ = "member.identified"
        moved = {k: traits.pop(k) for k in ("timezone", "locale") if isinstance(traits.get(k), str)}
        properties = {"traits": traits} if traits else {}
        properties.update(moved)
    elif kind == "page":
        type_ = "page.viewed"
        if isinstance(call.get("name"), str):
            properties.setdefault("name", call["name"])
    elif kind == "screen":
        type_ = "screen.viewed"
        if isinstance(call.get("name"), str):
            properties.setdefault("name", call["name"])
    elif kind == "alias":
        type_ = "member.identified"
        previous = _str(call.get("previousId"))
        if not previous:
            return [FieldError(field="previousId", reason="an alias call needs previousId")]
        member["device_id"] = previous
    else:
        return [FieldError(field="type", reason=f"{kind!r} calls are not supported")]
    for key in ("timezone", "locale"):
        if isinstance(context.get(key), str) and kind == "identify":
            properties.setdefault(key, context[key])
    timestamp = call.get("timestamp") or call.get("originalTimestamp") or now.isoformat()
    return {
        "event_id": _message_id(call),
        "type": type_,
        "member": member,
        "occurred_at": timestamp,
        "properties": properties,
    }


def _rename(errors: list[FieldError], index_prefix: str) -> list[FieldError]:
    out = []
    for e in errors:
        path = e.field.split("]", 1)[-1].lstrip(".") if e.field.startswith("events[") else e.field
        for ours, theirs in _FIELD_NAMES.items():
            if path == ours or path.startswith(ours + "."):
                path = theirs + path[len(ours) :]
                break
        out.append(FieldError(field=f"{index_prefix}{path}", reason=e.reason))
    return out


async def _ingest(
    request: Request, calls: list[Any], kinds: list[str | None], key: ApiKey, batch: bool
) -> SegmentResult:
    ingestor: Ingestor = request.app.state.ingestor
    check_count(len(calls), ingestor.settings.ingest_max_batch_events)
    now = dt.datetime.now(dt.UTC)
    items: list[Any] = []
    for call, kind in zip(calls, kinds, strict=True):
        if not isinstance(call, dict):
            items.append([FieldError(field="body", reason="a call must be a JSON object")])
            continue
        kind = kind or call.get("type")
        if not isinstance(kind, str):
            items.append([FieldError(field="type", reason="each batch item needs a type")])
            continue
        items.append(to_event(call, kind, now))
    raw = [i for i in items if isinstance(i, dict)]
    result = await ingestor.ingest_raw(raw, source="segment", key_id=key.key_id)
    outcomes = iter(result.results)
    merged = []
    for i, item in enumerate(items):
        prefix = f"batch[{i}]." if batch else ""
        if isinstance(item, list):
            merged.append(
                {
                    "index": i,
                    "event_id": None,
                    "status": "rejected",
                    "errors": [FieldError(field=prefix + e.field, reason=e.reason) for e in item],
                }
            )
        else:
            o = next(outcomes)
            merged.append(
                o.model_copy(update={"index": i, "errors": _rename(o.errors, prefix)}).model_dump()
            )
    rejected = sum(m["status"] == "rejected" for m in merged)
    return SegmentResult(
        success=rejected == 0,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=rejected,
        results=merged,  # type: ignore[arg-type]
    )


def _respond(result: SegmentResult, single: bool) -> JSONResponse:
    body = result.model_dump(mode="json")
    if result.rejected and not (result.accepted or result.duplicates):
        if single:
            details = [FieldError(**e) for e in body["results"][0]["errors"]]
            raise ApiError(400, "invalid_call", "the call was rejected", details)
        return JSONResponse(body, status_code=422)
    return JSONResponse(body)


_SINGLE_RESPONSES = {**ERROR_RESPONSES}
_BATCH_RESPONSES = {
    **ERROR_RESPONSES,
    422: {
        "model": SegmentResult | ErrorBody,
        "description": "Every call was rejected (each says why), or the body is not a batch.",
    },
}


def _body_schema(name: str) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }


async def _single(request: Request, key: ApiKey, kind: str) -> JSONResponse:
    ingestor: Ingestor = request.app.state.ingestor
    data = parse_json(await read_body(request, ingestor.settings.ingest_max_body_bytes))
    if not isinstance(data, dict):
        raise ApiError(
            422,
            "invalid_call",
            "the body must be a JSON object",
            [FieldError(field="body", reason=f"expected an object, got {type(data).__name__}")],
        )
    return _respond(await _ingest(request, [data], [kind], key, batch=False), single=True)


@router.post(
    "/v1/track",
    summary="Segment track",
    response_model=SegmentResult,
    responses=_SINGLE_RESPONSES,
    openapi_extra=_body_schema("SegmentCall"),
    tags=["segment"],
)
async def track(request: Request, key: ApiKey = Depends(require("ingest"))) -> JSONResponse:
    return await _single(request, key, "track")


@router.post(
    "/v1/identify",
    summary="Segment identify",
    response_model=SegmentResult,
    responses=_SINGLE_RESPONSES,
    openapi_extra=_body_schema("SegmentCall"),
    tags=["segment"],
)
async def identify(request: Request, key: ApiKey = Depends(require("ingest"))) -> JSONResponse:
    return await _single(request, key, "identify")


@router.post(
    "/v1/batch",
    summary="Segment batch",
    response_model=SegmentResult,
    responses=_BATCH_RESPONSES,
    openapi_extra=_body_schema("SegmentBatch"),
    tags=["segment"],
)
async def batch(request: Request, key: ApiKey = Depends(require("ingest"))) -> JSONResponse:
    ingestor: Ingestor = request.app.state.ingestor
    data = parse_json(await read_body(request, ingestor.settings.ingest_max_body_bytes))
    calls = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(calls, list) or not calls:
        raise ApiError(
            422,
            "invalid_request",
            'the body must be an object like {"batch": [...]}',
            [FieldError(field="batch", reason="must be a non-empty list of calls")],
        )
    shared = data.get("context")
    if isinstance(shared, dict):
        calls = [
            {**c, "context": {**shared, **(c.get("context") or {})}}
            if isinstance(c, dict) and isinstance(c.get("context") or {}, dict)
            else c
            for c in calls
        ]
    result = await _ingest(request, calls, [None] * len(calls), key, batch=True)
    return _respond(result, single=False)
