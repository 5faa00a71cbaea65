"""``POST /extract/<task>`` and ``/extract/<task>/batch`` for every registered task."""

# no ``from __future__ import annotations``: FastAPI reads the body types of the routes
# built in a loop below from their evaluated annotations.

from typing import Any

from fastapi import APIRouter, Request

from ...admission import all_or_none
from ...extraction.extractor import Outcome
from ...extraction.tasks import TASKS, Task
from ...extraction.wire import ExtractOptions, task_models
from ..disconnect import cancel_on_disconnect
from ..errors import RESPONSES
from ..state import extractor_of, metrics_of

ATTENTION = ("truncated", "unparseable", "ungrounded")  # stats counted as metrics


def _response(task: Task, outcome: Outcome) -> dict[str, Any]:
    return {
        "language": outcome.language,
        "template": outcome.template,
        task.records_field: outcome.records,
        "raw_output": outcome.raw_output,
        "warnings": outcome.warnings,
        "stats": outcome.stats,
    }


async def _run(request: Request, task: Task, texts: list[str], body: ExtractOptions) -> list[dict]:
    extractor = extractor_of(request)
    raw_schema = body.model_dump(by_alias=True)["schema"]
    # all or none: one text failing aborts the others' prompts in the engine
    outcomes = await cancel_on_disconnect(request, all_or_none(
        extractor.extract(task.name, text, raw_schema, body) for text in texts))
    metrics = metrics_of(request)
    for o in outcomes:
        for kind in ATTENTION:
            metrics.extraction.labels(task.name, kind).inc(getattr(o.stats, kind))
        metrics.output_tokens.labels(task.name).inc(o.stats.output_tokens)
        metrics.observe_prompts(task.name, o.stats.prompt_tokens, o.stats.cached_prompt_tokens)
    return [_response(task, o) for o in outcomes]


def _add_routes(router: APIRouter, task: Task) -> None:
    models = task_models(task)

    async def one(body: models.request, request: Request):
        return (await _run(request, task, [body.text], body))[0]

    async def batch(body: models.batch_request, request: Request):
        return {"results": await _run(request, task, body.texts, body)}

    router.add_api_route(f"/{task.name}", one, methods=["POST"], response_model=models.response,
                         name=f"extract_{task.name}", description=task.summary)
    router.add_api_route(f"/{task.name}/batch", batch, methods=["POST"], response_model=models.batch_response,
                         name=f"extract_{task.name}_batch", description=f"{task.summary} Many texts.")


def router() -> APIRouter:
    """A router with the routes of every task registered now."""
    out = APIRouter(prefix="/extract", tags=["extraction"], responses=RESPONSES)
    for task in TASKS.values():
        _add_routes(out, task)
    return out

