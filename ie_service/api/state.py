"""What routes reach through ``app.state`` (set by ``create_app`` and its lifespan)."""

from __future__ import annotations

from fastapi import Request

from ..extraction.extractor import Extractor
from ..engine import TextEngine
from .metrics import Metrics
from .supervisor import EngineSupervisor


def supervisor_of(request: Request) -> EngineSupervisor:
    return request.app.state.supervisor


def engine_of(request: Request) -> TextEngine:
    """The engine serving now; :class:`~.supervisor.EngineRestarting` (503) while it restarts."""
    return supervisor_of(request).current()


def extractor_of(request: Request) -> Extractor:
    return supervisor_of(request).current_extractor()


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics
