"""`POST /v1/events`: a batch of events, one outcome per event."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from journeyman.engine.access.keys import ApiKey
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.ingest.models import EventBatchIn, FieldError, IngestResult
from pydantic import TypeAdapter, ValidationError

from .auth import require
from .body import parse_json, read_body
from .errors import ERROR_RESPONSES, ApiError, ErrorBody

router = APIRouter()
_BATCH: TypeAdapter[EventBatchIn] = TypeAdapter(EventBatchIn)


def ingest_response(result: IngestResult) -> Response:
    """200 when anything was accepted or acknowledged, 422 when every event was rejected."""
    status = 422 if result.rejected and not (result.accepted or result.duplicates) else 200
    return Response(result.model_dump_json(), status_code=status, media_type="application/json")


def check_count(n: int, limit: int) -> None:
    if n > limit:
        raise ApiError(
            413,
            "batch_too_large",
            f"the batch has {n} events; at most {limit} are accepted per request",
            [FieldError(field="events", reason=f"more than {limit} events")],
        )


@router.post(
    "/v1/events",
    summary="Send a batch of events",
    response_model=IngestResult,
    responses={
        **ERROR_RESPONSES,
        422: {
            "model": IngestResult | ErrorBody,
            "description": "Every event was rejected (each result says why), or the body is "
            "not an event batch.",
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/EventBatchIn"}}
            },
        }
    },
)
async def post_events(request: Request, key: ApiKey = Depends(require("ingest"))) -> Response:
    ingestor: Ingestor = request.app.state.ingestor
    settings = ingestor.settings
    body = await read_body(request, settings.ingest_max_body_bytes)
    try:
        batch = _BATCH.validate_json(body)
    except ValidationError:
        batch = None
    if batch is not None:
        check_count(len(batch.events), settings.ingest_max_batch_events)
        result = await ingestor.ingest(batch.events, source="api", key_id=key.key_id)
        return ingest_response(result)
    # Slow path: find out what is wrong, event by event.
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(
            422,
            "invalid_request",
            'the body must be an object like {"events": [...]}',
            [FieldError(field="body", reason=f"expected an object, got {type(data).__name__}")],
        )
    extra = sorted(set(data) - {"events"})
    events = data.get("events")
    if extra or not isinstance(events, list) or not events:
        details = [FieldError(field=k or '""', reason="unknown field") for k in extra]
        if not isinstance(events, list) or not events:
            details.append(FieldError(field="events", reason="must be a non-empty list of events"))
        raise ApiError(422, "invalid_request", "the body is not an event batch", details)
    check_count(len(events), settings.ingest_max_batch_events)
    result = await ingestor.ingest_raw(events, source="api", key_id=key.key_id)
    return ingest_response(result)
