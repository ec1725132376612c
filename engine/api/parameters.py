"""Path and query parameters must be text the database can hold: UTF-8 without NUL.

A `%00` in a URL becomes a NUL character that PostgreSQL refuses in `text`, and bytes that
are not UTF-8 (an encoded lone surrogate such as `%ED%A0%80`, a stray `%FF`) are silently
replaced by U+FFFD when the URL is decoded, so the request would be about some other value.
`plain_parameters` runs before every route's own parameters and refuses both with a 400
naming the parameter (`query.<name>` or `path.<name>`), in the API's error shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import Request
from journeyman.engine.ingest.models import FieldError

from .errors import ApiError

_REASON = "must be UTF-8 text without NUL characters"


def _text(raw: bytes) -> str | None:
    """`raw` (percent-encoded) as text, or None when it is not UTF-8 or holds a NUL."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _printable(name: str) -> str:
    return name.replace("\x00", "\\x00")


def _query_errors(query: bytes) -> list[FieldError]:
    errors = []
    for pair in query.split(b"&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.replace(b"+", b" ").partition(b"=")
        key = _text(raw_key)
        if key is None or _text(raw_value) is None:
            name = key if key is not None else unquote_to_bytes(raw_key).decode(errors="replace")
            errors.append(FieldError(field=f"query.{_printable(name)}", reason=_REASON))
    return errors


def _path_errors(request: Request) -> list[FieldError]:
    names = [n for n, v in request.path_params.items() if isinstance(v, str) and "\x00" in v]
    raw_path = request.scope.get("raw_path")
    if raw_path is not None and _text(raw_path.split(b"?", 1)[0]) is None and not names:
        # bytes that are not UTF-8 were decoded to U+FFFD: blame the parameters holding it
        names = [n for n, v in request.path_params.items() if isinstance(v, str) and "\ufffd" in v]
        names = names or ["path"]
    return [FieldError(field=f"path.{n}", reason=_REASON) for n in names]


async def plain_parameters(request: Request) -> None:
    """Refuse a request whose path or query parameters are not UTF-8 text without NUL."""
    details = _path_errors(request) + _query_errors(request.scope.get("query_string", b""))
    if details:
        names = ", ".join(d.field for d in details)
        raise ApiError(400, "invalid_parameter", f"invalid parameter: {names}", details)


def document(schema: dict[str, Any]) -> None:
    """Add the 400 that `plain_parameters` can give to every operation of an OpenAPI schema
    (any request may carry a query parameter)."""
    json = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            answer = op.setdefault("responses", {}).setdefault(
                "400", {"description": "A path or query parameter is not UTF-8 text without NUL."}
            )
            answer.setdefault("content", {}).setdefault("application/json", json)
