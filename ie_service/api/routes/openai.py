"""``POST /v1/chat/completions`` and ``POST /v1/completions``: the OpenAI API on the same
engine, answered by vLLM's serving layer (``engine.openai()``; no vllm import here).

The guard in front applies as to every engine route (API keys, body size, the outstanding
limit, the timeout, metrics); a request asking for ``n`` choices claims ``n`` engine prompts.
The body is checked strictly first (``wire.ChatRequest`` / ``CompletionRequest``: types
without coercion, known roles, bounded numbers and strings): a 400 in OpenAI's error shape.
A non-streamed request is aborted when its client goes away; a stream stops with its client
(Starlette stops the generator, which aborts the vLLM request)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from ...admission import reserve_prompts
from ...engine.interface import OpenAIAPI
from ...errors import error_response, invalid_openai_request
from ..disconnect import cancel_on_disconnect
from ..state import engine_of, metrics_of
from ..wire import ChatRequest, CompletionRequest, OpenAIRequest

router = APIRouter(tags=["openai"])


REQUESTS: dict[str, type[OpenAIRequest]] = {"chat": ChatRequest, "completion": CompletionRequest}


async def _serve(request: Request, kind: str) -> Response:
    openai = engine_of(request).openai
    if openai is None:
        return error_response("this engine has no OpenAI-compatible API", 404, openai=True)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        return error_response(f"the request body is not JSON: {exc}", 400, openai=True)
    try:
        checked = REQUESTS[kind].model_validate(body)
    except ValidationError as exc:
        return invalid_openai_request(exc.errors())
    api: OpenAIAPI = openai()
    async with reserve_prompts(checked.n or 1):  # one prompt per choice (the guard's slot is the first)
        answer = api.chat(body, request) if kind == "chat" else api.completion(body, request)
        if checked.stream:
            response = await answer  # the stream itself watches its client
        else:
            response = await cancel_on_disconnect(request, answer)
    _count_tokens(request, response)
    return response


def _count_tokens(request: Request, response: Response) -> None:
    if response.status_code != 200 or not isinstance(response, JSONResponse):
        return
    try:
        tokens = json.loads(response.body)["usage"]["completion_tokens"]
    except (ValueError, KeyError, TypeError):
        return
    if isinstance(tokens, int):
        metrics_of(request).output_tokens.labels("openai").inc(tokens)


@router.post("/v1/chat/completions", summary="OpenAI chat completions (vLLM's serving layer)")
async def chat_completions(request: Request) -> Response:
    """An OpenAI ``ChatCompletionRequest``: ``messages``, ``stream``, ``response_format``
    (``json_schema``), ``stop``, ``seed``, ``logprobs``, ... as vLLM accepts them."""
    return await _serve(request, "chat")


@router.post("/v1/completions", summary="OpenAI completions (vLLM's serving layer)")
async def completions(request: Request) -> Response:
    """An OpenAI ``CompletionRequest``: ``prompt``, ``stream``, ``response_format``, ``stop``,
    ``seed``, ``logprobs``, ... as vLLM accepts them."""
    return await _serve(request, "completion")
