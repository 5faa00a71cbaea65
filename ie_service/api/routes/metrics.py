"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...engine.supervisor import EngineSupervisor
from ..state import metrics_of

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    metrics = metrics_of(request)
    supervisor: EngineSupervisor | None = request.app.state.supervisor  # None before the lifespan
    engine = supervisor.engine if supervisor is not None else None
    if engine is not None:
        metrics.observe_engine(engine.activity())
    if supervisor is not None:
        metrics.observe_probes(supervisor.probes)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
