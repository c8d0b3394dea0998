"""Where errors become HTTP statuses: the one place that maps them."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.errors import (
    AlreadyExists,
    BadSignature,
    BlockKeyError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ProvisionerError,
    PushpoolError,
    StoreUnavailable,
    UnknownPoolType,
)

log = logging.getLogger("pushpool.api")

STATUS: list[tuple[type[Exception], int]] = [
    (BadSignature, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (InvalidInput, 422),
    (UnknownPoolType, 422),
    (ProvisionerError, 502),
    (BlockKeyError, 503),
    (StoreUnavailable, 503),
]


def _validation_body(field: str, message: str, where: str = "body") -> dict[str, object]:
    loc = [where, *field.split(".")]
    label = field if where == "body" else f"{where} parameter {field}"
    return {
        "detail": [{"loc": loc, "msg": message, "type": "value_error"}],
        "message": f"{label}: {message}",
    }


def status_for(exc: Exception) -> int:
    """The HTTP status of a project error (400 for one not listed)."""
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 400)


async def _pushpool_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    if isinstance(exc, InvalidInput | UnknownPoolType):
        field = getattr(exc, "field", "body")
        where = getattr(exc, "where", "body")
        return JSONResponse(_validation_body(field, exc.message, where), status_code=status)
    return JSONResponse({"detail": str(exc)}, status_code=status)


# The tags of the tagged unions in request bodies (schedules, sources): pydantic puts the
# chosen member's tag in an error's location, where a user sees a field name twice.
_UNION_TAGS = frozenset({"cron", "interval", "local", "git", "image"})


def _tidy(loc: list[object]) -> list[object]:
    """Drop a union tag that follows a list index or a source (``schedules.0.cron.cron``
    -> ``schedules.0.cron``, ``source.git.url`` -> ``source.url``)."""
    out: list[object] = []
    for i, part in enumerate(loc):
        after_union = bool(out) and (isinstance(out[-1], int) or out[-1] == "source")
        if part in _UNION_TAGS and after_union and i + 1 < len(loc):
            continue
        out.append(part)
    return out


def _where(loc: list[object]) -> str:
    """``body.schedules.0.cron`` -> ``schedules[0].cron``; a query or path parameter keeps its
    name."""
    text = ""
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or (str(loc[0]) if loc else "body")


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": _tidy(list(e.get("loc", ()))), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors[:5])
    return JSONResponse({"detail": errors, "message": summary}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse | Response:
    """FastAPI answers a body it cannot parse (not JSON, or nested too deeply for the
    parser) with a bare 400: make it the 422 every other bad input gets."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        message = "not valid JSON, or nested too deeply to read"
        return JSONResponse(
            {
                "detail": [{"loc": ["body"], "msg": message, "type": "json_invalid"}],
                "message": f"body: {message}",
            },
            status_code=422,
        )
    return await http_exception_handler(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(PushpoolError, _pushpool_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
