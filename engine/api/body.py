"""Reading request bodies within limits: content type (415), size (413), JSON (400)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from journeyman.engine.ingest.models import FieldError
from journeyman.engine.ingest.storable import loads

from .errors import ApiError


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    if not _is_json(request.headers.get("content-type", "")):
        raise ApiError(
            415,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
            [FieldError(field="Content-Type", reason="must be application/json")],
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "body_too_large", f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The body as JSON. Integer literals too long for Python (over 4,300 digits) come back
    as `LongInteger` markers, so validation refuses them naming their field."""
    try:
        return loads(body)
    except UnicodeDecodeError as exc:
        raise _invalid(f"the body is not UTF-8: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise _invalid(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise _invalid("the body nests too deeply or cannot be read as JSON") from exc


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message, [FieldError(field="body", reason=message)])
