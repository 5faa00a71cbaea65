"""``GET /v1/models``: the served model (OpenAI-style list)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..state import engine_of
from ..wire import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    """The served model, then each run-time adapter (``serve --lora``) with its version."""
    engine = engine_of(request)
    fmt = engine.prompt_format
    cards = [ModelCard(id=engine.model_name, max_model_len=engine.max_model_len, replicas=engine.replicas,
                       prompt_format=fmt.name if fmt is not None else None,
                       prompt_format_reason=engine.prompt_format_reason,
                       dtype=engine.run_dtype, quantization=engine.quantization)]
    cards += [ModelCard(id=name, max_model_len=engine.max_model_len, replicas=engine.replicas,
                        parent=engine.model_name, version=version)
              for name, version in engine.adapters.items()]
    return ModelList(data=cards)
