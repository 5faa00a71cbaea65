"""What routes reach through ``app.state`` (set by ``create_app`` and its lifespan)."""

from __future__ import annotations

from fastapi import Request

from ..extraction.extractor import Extractor
from ..engine import TextEngine
from .metrics import Metrics


def engine_of(request: Request) -> TextEngine:
    return request.app.state.engine


def extractor_of(request: Request) -> Extractor:
    return request.app.state.extractor


def metrics_of(request: Request) -> Metrics:
    return request.app.state.metrics
