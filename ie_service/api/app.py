"""The FastAPI application: routes, lifespan (engine start/stop), error handling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..extraction.extractor import Extractor
from ..extraction.templates import TemplateRegistry
from ..generation import TextEngine
from .disconnect import cancel_on_disconnect
from .errors import install_error_handlers
from .extract_routes import router as extract_router
from .guard import Guard
from .metrics import Metrics
from .settings import ServiceSettings
from .wire import (
    ErrorResponse,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    ModelCard,
    ModelList,
)

ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 429, 499, 500, 503, 504)}


def engine_of(request: Request) -> TextEngine:
    return request.app.state.engine


def create_app(engine_factory: Callable[[], TextEngine],
               templates: TemplateRegistry | None = None,
               settings: ServiceSettings | None = None) -> FastAPI:
    """Build the app; ``engine_factory`` runs at start-up, its engine is shut down at exit."""
    templates = templates or TemplateRegistry.default()
    settings = settings or ServiceSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine_factory()
        app.state.extractor = Extractor(app.state.engine, templates)
        try:
            yield
        finally:
            app.state.engine.shutdown()

    app = FastAPI(title="ie-service", version=__version__, lifespan=lifespan)
    app.state.metrics = metrics
    app.add_middleware(Guard, settings=settings, metrics=metrics)
    install_error_handlers(app)
    app.include_router(extract_router, responses=ERRORS)

    @app.post("/generate", response_model=GenerateResponse, responses=ERRORS)
    async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
        """KnowLM-compatible generation: the model family's prompt format is applied to
        instruction + input."""
        engine = engine_of(request)
        prompt = engine.render(body.instruction, body.input)
        result = await cancel_on_disconnect(request, engine.generate(prompt, body.parameters, body.json_schema))
        return GenerateResponse(
            generated_text=result.text,
            num_output_tokens_cf=result.num_output_tokens,
            finish_reason=result.finish_reason,
        )

    @app.get("/health", response_model=HealthResponse, responses={503: {"model": ErrorResponse}})
    async def health(request: Request):
        engine = engine_of(request)
        try:
            await engine.check_health()
        except Exception as exc:  # the engine core died: report, do not crash
            return JSONResponse({"error": f"engine unhealthy: {exc}"}, status_code=503)
        return HealthResponse(status="ok", model=engine.model_name)

    @app.get("/is_ready", response_model=HealthResponse, include_in_schema=False)
    async def is_ready(request: Request):
        """KnowLM's readiness route."""
        return await health(request)

    @app.get("/v1/models", response_model=ModelList)
    async def models(request: Request) -> ModelList:
        engine = engine_of(request)
        return ModelList(data=[ModelCard(id=engine.model_name, max_model_len=engine.max_model_len)])

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
