"""Every failure becomes an OpenAI-style error object: ``{"error": {"message", "type", "param", "code"}}``.

Exceptions map to statuses through one exact-type table (most specific class first); a message always
says what was wrong with the request. Anything unmapped is a bug: logged with its traceback, answered
500 with a message that leaks nothing internal.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serac.errors import (
    EditNotFoundError,
    EditValidationError,
    ModelNotAvailableError,
    PromptTooLongError,
    SeracError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreUnavailableError,
    VersionNotFoundError,
)

logger = logging.getLogger(__name__)

# status -> OpenAI error type
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
    504: "server_error",
}
RETRY_AFTER_S = 1  # what a 503 that may clear by itself tells a client to wait

# Storage failures are the server's, never the client's: a fixed message (the store's own names its
# file, which a client must not see), 503 where a retry may succeed.
STORE_FAILURES: tuple[tuple[type[StoreError], int, str, str], ...] = (
    (StoreLockedError, 503, "store_locked", "the edit store is busy with another writer; retry shortly"),
    (
        StoreUnavailableError,
        503,
        "store_unavailable",
        "the edit store cannot be reached right now (its database server is down or refuses the "
        "connection); retry later",
    ),
    (
        StoreCorruptError,
        500,
        "store_corrupt",
        "the edit store is damaged; the server log has the details (an operator must restore it)",
    ),
    (
        StoreError,
        503,
        "store_unavailable",
        "the edit store cannot be used right now (read-only, full disk or I/O error); nothing was "
        "changed; retry later",
    ),
)

# (exception class, status, code): first match wins, so subclasses come before their bases.
EXCEPTION_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (PromptTooLongError, 400, "context_length_exceeded"),
    (EditValidationError, 400, "invalid_edit"),
    (EditNotFoundError, 404, "edit_not_found"),
    (VersionNotFoundError, 404, "version_not_found"),
    (ModelNotAvailableError, 503, "model_not_available"),
    (SeracError, 400, "invalid_request"),
)


class APIError(Exception):
    """Raised by handlers for a specific HTTP error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)


def classify(exc: BaseException) -> APIError | None:
    """The API error for a project exception, or None if it is not one we expect."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, StoreError):
        for cls, status, code, message in STORE_FAILURES:
            if isinstance(exc, cls):
                # the log names the SQLite error, not the store's path
                logger.warning("edit store failure (%s): %s", code, exc.sqlite_error or type(exc).__name__)
                headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
                return APIError(status, message, code, headers=headers)
    for cls, status, code in EXCEPTION_TABLE:
        if isinstance(exc, cls):
            return APIError(status, str(exc), code)
    return None


# -- request validation ---------------------------------------------------------------------------
_UNION_TAGS = {"one", "many"}  # discriminator tags of POST /v1/edits, not part of a field's path


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path") and p not in _UNION_TAGS]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _describe(error: dict[str, Any]) -> tuple[str, str | None]:
    kind = error.get("type", "")
    where = _location(error.get("loc", ()))
    message = str(error.get("msg", "invalid value"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON ({detail}); send a JSON object", None
    if kind == "extra_forbidden":
        return (
            f"unknown or unsupported field '{where}'; check the spelling (see /docs for the accepted fields)",
            where,
        )
    if kind == "missing":
        if not where:
            return "request body is missing; send a JSON object", None
        return f"missing required field '{where}'", where
    received = error.get("input")
    custom = kind == "value_error"  # our validators' messages already say what was received
    if not where:
        if custom:
            return message, None
        if isinstance(received, (bytes, str)):
            return "request body is not a JSON object; send one with `Content-Type: application/json`", None
        return f"request body must be a JSON object, got {_json_kind(received)}", None
    if custom:
        return f"invalid value for '{where}': {message}", where
    shown = json.dumps(received)[:80] if _jsonable(received) else type(received).__name__
    return f"invalid value for '{where}': {message} (got {shown})", where


def _json_kind(value: Any) -> str:
    for types, name in (
        (bool, "a boolean"),
        ((int, float), "a number"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(value, types):
            return name
    return "null" if value is None else type(value).__name__


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def validation_message(errors: Sequence[dict[str, Any]]) -> tuple[str, str | None]:
    described = [_describe(e) for e in errors[:5]]
    message = "; ".join(d[0] for d in described)
    if len(errors) > 5:
        message += f"; and {len(errors) - 5} more problem(s)"
    return message, described[0][1] if described else None


# -- handlers ---------------------------------------------------------------------------------------
def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc.errors())
        return error_response(400, message, "invalid_request", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = None
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
            code = "unknown_endpoint"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            code = "method_not_allowed"
        elif exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            message = (
                "request body could not be parsed as JSON (is it nested too deeply?); send a JSON object"
            )
            code = "invalid_request"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, code, headers=getattr(exc, "headers", None))

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.param, exc.headers)

    @app.exception_handler(SeracError)
    async def _serac(request: Request, exc: SeracError) -> JSONResponse:
        api = classify(exc) or APIError(400, str(exc))
        return error_response(api.status, api.message, api.code, api.param, api.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; the server log has the details", "internal_error")


# -- OpenAPI: the error responses routes document -------------------------------------------------
def _documented(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    from serac.server.schemas import ErrorResponse

    return {status: {"model": ErrorResponse, "description": text} for status, text in pairs}


ERRORS = _documented(
    (400, "Invalid request: malformed JSON, wrong types, unknown fields, prompt over the context"),
    (401, "Missing or wrong API key"),
    (403, "The API key's role does not allow this"),
    (413, "Request body too large"),
)
NOT_FOUND = _documented((404, "No such edit or version"))
