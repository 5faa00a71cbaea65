"""``GET /health`` (503 unless the engine is alive and answering) and KnowLM's ``GET /is_ready``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import Unavailable, error_body, retry_header
from ..state import supervisor_of
from ..wire import HealthResponse, UnhealthyResponse

router = APIRouter()


@router.get("/health", response_model=HealthResponse, responses={503: {"model": UnhealthyResponse}})
async def health(request: Request):
    """200 when the engine is alive and makes progress (a busy engine is healthy); 503 with
    ``status`` ``starting`` / ``restarting`` (a new engine is being started after the old
    one died), ``hung`` (a probe got no answer and nothing else progressed), ``dead`` or
    ``failed``. Answered from the supervisor's state: it never waits on the engine."""
    supervisor = supervisor_of(request)
    verdict = await supervisor.health()
    if not verdict.ok:
        message = verdict.detail or f"engine {verdict.status}"
        return JSONResponse({**error_body(message, 503), "status": verdict.status}, status_code=503,
                            headers=retry_header(Unavailable.retry_after))
    return HealthResponse(status="ok", model=supervisor.engine.model_name)


@router.get("/is_ready", response_model=HealthResponse, include_in_schema=False)
async def is_ready(request: Request):
    """KnowLM's readiness route."""
    return await health(request)
