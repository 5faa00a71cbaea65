"""The routers of the app, one module each; ``routers()`` lists them in mounting order."""

from __future__ import annotations

from fastapi import APIRouter

from . import extract, generate, health, metrics, models, openai, playground, templates


def routers() -> list[APIRouter]:
    """Extraction routes are built from the task registry as it is now."""
    return [generate.router, extract.router(), health.router, models.router, metrics.router, openai.router,
            templates.router, playground.router]
