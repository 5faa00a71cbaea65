"""The app's exception handlers, registered in one place: a :class:`~ie_service.errors.ServiceError`
is answered with its own status, body and Retry-After; a request that fails validation with
422 and the errors; anything else with a bare 500. Routes raise; they do not translate."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ServiceError, error_body, error_response, validation_message
from .wire import ErrorResponse

log = logging.getLogger(__name__)

# what ServiceErrors answer (ie_service/errors.py), and the Guard middleware before any route
STATUSES = (400, 401, 413, 422, 429, 431, 499, 500, 503, 504)
RESPONSES = {code: {"model": ErrorResponse} for code in STATUSES}
"""Error responses documented in the OpenAPI spec of every route."""


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        return error_response(str(exc), exc.status, retry_after=exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
        return JSONResponse(error_body(validation_message(errors), 422, detail=errors), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), exc.status_code), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(f"internal error: {type(exc).__name__}", 500)
