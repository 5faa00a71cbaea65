"""The FastAPI application: lifespan (engine start/stop), middleware, error table, routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..extraction.templates import TemplateRegistry
from ..engine import TextEngine
from .errors import install_error_handlers
from .guard import Guard
from .metrics import Metrics
from .routes import routers
from .settings import ServiceSettings
from .supervisor import EngineSupervisor


def create_app(engine_factory: Callable[[], TextEngine],
               templates: TemplateRegistry | None = None,
               settings: ServiceSettings | None = None,
               supervisor: Callable[..., EngineSupervisor] = EngineSupervisor) -> FastAPI:
    """Build the app; ``engine_factory`` runs at start-up, and again whenever the engine
    dies (``api/supervisor.py``); the engine is shut down at exit. Templates load (and are
    checked) here, before the engine starts."""
    templates = templates or TemplateRegistry.default()
    settings = settings or ServiceSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.supervisor = supervisor(engine_factory, templates)
        app.state.supervisor.start()
        app.state.supervisor.watch()
        try:
            yield
        finally:
            await app.state.supervisor.stop()

    app = FastAPI(title="ie-service", version=__version__, lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(Guard, settings=settings, metrics=metrics)
    install_error_handlers(app)
    for router in routers():
        app.include_router(router)
    return app
