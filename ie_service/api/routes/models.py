"""``GET /v1/models``: the served model (OpenAI-style list)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..state import engine_of
from ..wire import ModelCard, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    engine = engine_of(request)
    return ModelList(data=[ModelCard(id=engine.model_name, max_model_len=engine.max_model_len,
                                     replicas=engine.replicas)])
