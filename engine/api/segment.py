"""Segment-compatible endpoints: `POST /v1/track`, `/v1/identify`, `/v1/page`,
`/v1/screen`, `/v1/alias`, `/v1/group` and `/v1/batch` (where Segment's and RudderStack's
libraries send every call, gzip-compressed or not: `journeyman.engine.api.limits` inflates it).

A system wired to Segment's (or RudderStack's) HTTP tracking API can point at Journeyman
unchanged: the write key is a Journeyman API key with the `ingest` scope (HTTP Basic, key
as user name), and payloads are mapped onto Journeyman events (see docs/ingestion.md,
"Segment mapping"). E-commerce events that describe a cart one product at a time are
folded into cart snapshots (`journeyman.engine.ingest.carts`). Error bodies carry `code` and
`message` at the top level, where those libraries read them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.ingest import carts
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.ingest.models import EVENT_TYPE_PATTERN, FieldError, IngestResult
from journeyman.engine.ingest.segment_events import SEGMENT_EVENTS
from pydantic import BaseModel, ConfigDict, Field

from .auth import require
from .body import parse_json, read_body
from .errors import ERROR_RESPONSES, ApiError, ErrorBody
from .events import check_count

router = APIRouter()
log = logging.getLogger(__name__)

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

    type: str | None = Field(
        default=None, description="track, identify, page, screen, alias, group"
    )
    userId: str | int | None = None
    anonymousId: str | int | None = None
    previousId: str | int | None = None
    groupId: str | int | None = None
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
    code: str | None = Field(
        default=None, description="When every call was rejected: invalid_batch."
    )
    message: str | None = Field(
        default=None, description="When every call was rejected: the first call's errors."
    )


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
    group_traits: dict[str, Any] = {}
    if kind == "group":
        # A group call's traits describe the group (account), not the member.
        group_traits, traits = dict(traits or {}), None
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
        errors = _ecommerce(name, properties)
        if errors:
            return errors
    elif kind == "identify":
        type_ = "member.identified"
        moved = {k: traits.pop(k) for k in ("timezone", "locale") if isinstance(traits.get(k), str)}
        properties = {"traits": traits} if traits else {}
        properties.update(moved)
    elif kind in ("page", "screen"):
        type_ = f"{kind}.viewed"
        for field in ("name", "category"):
            if isinstance(call.get(field), str):
                properties.setdefault(field, call[field])
    elif kind == "alias":
        type_ = "member.identified"
        previous = _str(call.get("previousId"))
        if not previous:
            return [FieldError(field="previousId", reason="an alias call needs previousId")]
        member["device_id"] = previous
    elif kind == "group":
        type_ = "member.grouped"
        group = _str(call.get("groupId"))
        if not group:
            return [FieldError(field="groupId", reason="a group call needs groupId")]
        properties = {"group_id": group, "traits": group_traits}
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


def _ecommerce(name: str, properties: dict[str, Any]) -> list[FieldError]:
    """Spec e-commerce events: a product change must name its product, and an order's
    `products` become its `items` (the lines a report or a template reads)."""
    lowered = name.strip().lower()
    if lowered in ("product added", "product removed") and carts.line_of(properties) is None:
        return [
            FieldError(
                field="properties.product_id",
                reason=f"{name} needs properties.product_id or properties.sku",
            )
        ]
    if lowered in ("order completed", "cart viewed", "checkout started"):
        if "products" in properties:
            properties.setdefault("items", carts.items_of(properties["products"]))
    return []


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
    changes: dict[str, carts.CartChange] = {}
    for call, kind in zip(calls, kinds, strict=True):
        if not isinstance(call, dict):
            items.append([FieldError(field="body", reason="a call must be a JSON object")])
            continue
        kind = kind or call.get("type")
        if not isinstance(kind, str):
            items.append([FieldError(field="type", reason="each batch item needs a type")])
            continue
        event = to_event(call, kind, now)
        items.append(event)
        if isinstance(event, dict) and kind == "track" and isinstance(call.get("event"), str):
            change = carts.change_for(call["event"], event["properties"])
            if change is not None:
                changes.setdefault(event["event_id"], change)
    raw = [i for i in items if isinstance(i, dict)]
    result = await ingestor.ingest_raw(
        raw,
        source="segment",
        key_id=key.key_id,
        amend=carts.CartFolder(changes) if changes else None,
    )
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
    if rejected and batch and rejected < len(merged):
        # Segment's libraries never read a 200 body: say here what was refused.
        first = next(m for m in merged if m["status"] == "rejected")
        # Field names only: a reason may quote the refused (possibly personal) value.
        reason = ", ".join(e.field for e in first["errors"])
        log.warning(
            "segment batch from key %s: %d of %d calls refused (first, fields: %s)",
            key.key_id,
            rejected,
            len(merged),
            reason,
        )
    return SegmentResult(
        success=rejected == 0,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=rejected,
        results=merged,  # type: ignore[arg-type]
    )


def _respond(result: SegmentResult, single: bool) -> JSONResponse:
    body = result.model_dump(mode="json", exclude={"code", "message"})
    if result.rejected and not (result.accepted or result.duplicates):
        if single:
            details = [FieldError(**e) for e in body["results"][0]["errors"]]
            raise ApiError(400, "invalid_call", "the call was rejected", details)
        # `code` and `message` at the top level: what Segment's libraries report.
        first = body["results"][0]["errors"]
        body["code"] = "invalid_batch"
        body["message"] = "every call was rejected; first: " + "; ".join(
            f"{e['field']}: {e['reason']}" for e in first
        )
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


async def _write_key(request: Request) -> str | None:
    """Segment's `writeKey` body field: older Segment libraries (analytics-python before
    2.4) send the key only there, with no Authorization header."""
    if request.headers.get("authorization"):
        return None
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):
        return None
    key = data.get("writeKey") if isinstance(data, dict) else None
    return key if isinstance(key, str) and key else None


_INGEST = require("ingest", fallback=_write_key)


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
async def track(request: Request, key: ApiKey = Depends(_INGEST)) -> JSONResponse:
    return await _single(request, key, "track")


@router.post(
    "/v1/identify",
    summary="Segment identify",
    response_model=SegmentResult,
    responses=_SINGLE_RESPONSES,
    openapi_extra=_body_schema("SegmentCall"),
    tags=["segment"],
)
async def identify(request: Request, key: ApiKey = Depends(_INGEST)) -> JSONResponse:
    return await _single(request, key, "identify")


def _single_route(kind: str) -> None:
    async def endpoint(request: Request, key: ApiKey = Depends(_INGEST)) -> JSONResponse:
        return await _single(request, key, kind)

    endpoint.__name__ = f"segment_{kind}"
    router.post(
        f"/v1/{kind}",
        summary=f"Segment {kind}",
        response_model=SegmentResult,
        responses=_SINGLE_RESPONSES,
        openapi_extra=_body_schema("SegmentCall"),
        tags=["segment"],
    )(endpoint)


for _kind in ("page", "screen", "alias", "group"):
    _single_route(_kind)


@router.post(
    "/v1/batch",
    summary="Segment batch",
    response_model=SegmentResult,
    responses=_BATCH_RESPONSES,
    openapi_extra=_body_schema("SegmentBatch"),
    tags=["segment"],
)
async def batch(request: Request, key: ApiKey = Depends(_INGEST)) -> JSONResponse:
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
