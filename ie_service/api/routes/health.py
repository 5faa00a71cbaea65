"""``GET /health`` (503 when the engine died) and KnowLM's ``GET /is_ready``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..state import engine_of
from ..wire import ErrorResponse, HealthResponse

router = APIRouter()


@router.get("/health", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
async def health(request: Request):
    engine = engine_of(request)
    try:
        await engine.check_health()
    except Exception as exc:  # the engine core died: report, do not crash
        return JSONResponse({"error": f"engine unhealthy: {exc}"}, status_code=503)
    return HealthResponse(status="ok", model=engine.model_name)


@router.get("/is_ready", response_model=HealthResponse, include_in_schema=False)
async def is_ready(request: Request):
    """KnowLM's readiness route."""
    return await health(request)
