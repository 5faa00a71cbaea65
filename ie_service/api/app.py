"""The FastAPI application: lifespan (engine start/stop), middleware, error table, routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..extraction.templates import TemplateRegistry
from ..engine import TextEngine
from ..engine.supervisor import EngineSupervisor
from .errors import install_error_handlers
from .guard import Guard
from .metrics import Metrics
from .routes import routers
from .settings import ServiceSettings


def create_app(engine_factory: Callable[[], TextEngine],
               templates: TemplateRegistry | None = None,
               settings: ServiceSettings | None = None,
               supervisor: Callable[[Callable[[], TextEngine]], EngineSupervisor] = EngineSupervisor) -> FastAPI:
    """Build the app; ``engine_factory`` runs at start-up, and again whenever the engine
    dies (``engine/supervisor.py``); the engine is shut down at exit. Templates load (and are
    checked) here, before the engine starts."""
    templates = templates or TemplateRegistry.default()
    settings = settings or ServiceSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.supervisor = supervisor(engine_factory)
        app.state.supervisor.start()
        app.state.supervisor.watch()
        try:
            yield
        finally:
            await app.state.supervisor.stop()

    app = FastAPI(title="ie-service", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_offline_docs(app)
    app.state.metrics = metrics
    app.state.templates = templates  # the extractor's, over the engine serving now (state.py)
    app.state.supervisor = None  # the lifespan's, while it runs
    app.add_middleware(Guard, settings=settings, metrics=metrics)
    install_error_handlers(app)
    for router in routers():
        app.include_router(router)
    return app


DOCS_ASSETS = "/docs-assets"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the files the ``fastapi-offline`` package ships, served here,
    so the page works with no network (FastAPI's default loads it from a CDN)."""
    from pathlib import Path

    import fastapi_offline

    static = Path(fastapi_offline.__file__).resolve().parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=static), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json",
                                   title="ie-service - Swagger UI",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")
