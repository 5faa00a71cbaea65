"""One error body for every failure, ``{"error": message, "detail": [...]?}``, and one table
of which exception is answered with which status. Routes raise; they do not translate."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..extraction.schema import SchemaError
from ..extraction.templates import TemplateError
from ..engine import EngineUnavailable, PromptTooLong
from ..engine.json_schema_guard import GrammarBusy
from ..request_errors import STATUS as REQUEST_STATUS
from .disconnect import ClientDisconnected
from .supervisor import RETRY_AFTER_S
from .wire import ErrorResponse

log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # nginx's code: the client went away

STATUS: dict[type[Exception], int] = {
    **REQUEST_STATUS,
    SchemaError: 422,
    TemplateError: 422,
    PromptTooLong: 400,
    EngineUnavailable: 503,
    GrammarBusy: 503,  # grammar compilation congested by other schemas: not the client's fault
    ClientDisconnected: CLIENT_CLOSED,
}
"""Exception → HTTP status; a subclass takes its nearest listed base's status."""

GUARD_STATUS = (400, 401, 413, 429, 431, 504)  # answered by the Guard middleware before any route
RESPONSES = {code: {"model": ErrorResponse}
             for code in sorted({*STATUS.values(), *GUARD_STATUS, 422, 500})}
"""Error responses documented in the OpenAPI spec of every route."""


def _summary(errors: list[dict]) -> str:
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _message(exc: Exception) -> str:
    return "client disconnected" if isinstance(exc, ClientDisconnected) else str(exc)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        return JSONResponse({"error": _summary(errors), "detail": errors}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def _listed(request: Request, exc: Exception) -> JSONResponse:
        status = next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)
        if status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        retry = getattr(exc, "retry_after_s", None)
        if retry is None and status == 503:
            retry = RETRY_AFTER_S  # every 503 says when to come back (a dead engine's first ones too)
        headers = {"retry-after": str(retry)} if retry is not None else None
        return JSONResponse({"error": _message(exc)}, status_code=status, headers=headers)

    for exc_class in STATUS:
        app.add_exception_handler(exc_class, _listed)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)
