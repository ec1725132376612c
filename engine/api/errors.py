"""The API's error format and the handlers that make every error use it.

Every 4xx/5xx body is `{"error": {"code": ..., "message": ..., "details": [{"field",
"reason"}]}}`. On the Segment-compatible paths the body also carries `code` and `message` at
the top level, where Segment's and RudderStack's libraries read them.

Client input never produces a 500: bodies are read, parsed and validated by code that turns
each failure into a 400, 413, 415 or 422 naming what is wrong.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from journeyman.engine.ingest.models import FieldError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

SEGMENT_PATHS = frozenset(
    {
        "/v1/track",
        "/v1/identify",
        "/v1/page",
        "/v1/screen",
        "/v1/alias",
        "/v1/group",
        "/v1/batch",
    }
)
"""The Segment-compatible endpoints (`journeyman.engine.api.segment`)."""


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. invalid_json.")
    message: str
    details: list[FieldError] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorInfo
    code: str | None = Field(
        default=None, description="Segment-compatible paths only: the same as error.code."
    )
    message: str | None = Field(
        default=None, description="Segment-compatible paths only: the same as error.message."
    )


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


_INPUT_ERRORS = frozenset({400, 413, 422})


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[FieldError] | None = None,
    *,
    flat: bool = False,
) -> JSONResponse:
    """The error body; `flat` adds the top-level `code`/`message` Segment clients read."""
    if not details and status in _INPUT_ERRORS:
        # Every refusal of input names what was refused: here the body as a whole.
        details = [FieldError(field="body", reason=message)]
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=details or []))
    if flat:
        body.code, body.message = code, message
    headers = {"WWW-Authenticate": 'Bearer realm="journeyman"'} if status == 401 else None
    plain = body.model_dump(exclude=None if flat else {"code", "message"})
    return JSONResponse(plain, status_code=status, headers=headers)


def _flat(request: Request) -> bool:
    return request.url.path in SEGMENT_PATHS


def _response(status: int, description: str) -> dict:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict] = {
    400: _response(400, "The body is not valid JSON."),
    401: _response(401, "Missing or invalid API key."),
    403: _response(403, "The API key lacks the scope this endpoint needs."),
    413: _response(413, "The body or the batch is too large."),
    415: _response(415, "The body is not application/json."),
    422: _response(422, "The request is well-formed JSON but not a valid request."),
}
READ_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403, 422)}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, flat=_flat(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            details.append(
                FieldError(
                    field=".".join(loc) or "request",
                    reason=str(err.get("msg", "invalid")).removeprefix("Value error, "),
                )
            )
        return error_response(
            422, "invalid_request", "the request is not valid", details, flat=_flat(request)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), flat=_flat(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            "internal_error",
            "an internal error occurred; it was logged",
            flat=_flat(request),
        )
