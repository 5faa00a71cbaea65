"""``POST /generate``: KnowLM-compatible generation."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..disconnect import cancel_on_disconnect
from ..errors import RESPONSES
from ..state import engine_of, metrics_of
from ..wire import GenerateRequest, GenerateResponse

router = APIRouter(responses=RESPONSES)


@router.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest, request: Request) -> GenerateResponse:
    """KnowLM-compatible generation: the model family's prompt format is applied to
    instruction + input."""
    engine = engine_of(request)
    prompt = engine.render(body.instruction, body.input)
    result = await cancel_on_disconnect(request, engine.generate(prompt, body.parameters, body.json_schema,
                                                                 adapter=body.adapter))
    metrics_of(request).observe_prompts("generate", result.num_prompt_tokens, result.num_cached_tokens)
    return GenerateResponse(
        generated_text=result.text,
        num_output_tokens_cf=result.num_output_tokens,
        finish_reason=result.finish_reason,
    )
