"""What routes reach through ``app.state`` (set by ``create_app`` and its lifespan)."""

from __future__ import annotations

from fastapi import Request

from ..engine import TextEngine
from ..engine.supervisor import EngineSupervisor
from ..extraction.extractor import Extractor
from .metrics import Metrics


def supervisor_of(request: Request) -> EngineSupervisor:
    return request.app.state.supervisor


def engine_of(request: Request) -> TextEngine:
    """The engine serving now; :class:`~ie_service.engine.supervisor.EngineRestarting` (503)
    while it restarts."""
    return supervisor_of(request).current()


def extractor_of(request: Request) -> Extractor:
    """An extractor over the engine serving now (503 while it restarts, as :func:`engine_of`)."""
    return Extractor(engine_of(request), request.app.state.templates)


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics
