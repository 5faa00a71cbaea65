"""The OpenAI-compatible API (``/v1/chat/completions``, ``/v1/completions``), answered by
vLLM's own OpenAI serving layer over our running ``AsyncLLM``.

Chat templating, request validation, sampling-parameter mapping and streaming are vLLM's
(``OpenAIServingChat`` / ``OpenAIServingCompletion``, built the way vLLM's api_server builds
them, with its frontend defaults); this module only builds them and turns what they answer
into a Starlette response. Imported by ``vllm_engine`` alone (it imports vllm). Also here:
a ``response_format`` JSON schema goes through the same bounded grammar check as
``/generate`` before the engine compiles it.

The seam with vLLM's OpenAI layer is this file: the names imported below (none private),
at the vLLM version pyproject pins; ``tests/test_openai_serving_unit.py`` checks them. Our own
refusals are written by :func:`~ie_service.errors.error_response` in OpenAI's shape; what
vLLM answers or raises is passed on in vLLM's (``create_error_response``, a method of its
serving classes).
"""

from __future__ import annotations

import json
import logging
from argparse import Namespace
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from vllm.entrypoints.launchers.cli_args import make_arg_parser, resolve_default_chat_template_kwargs
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.chat_completion.serving import OpenAIServingChat
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.openai.completion.serving import OpenAIServingCompletion
from vllm.entrypoints.openai.models.protocol import BaseModelPath
from vllm.entrypoints.openai.models.serving import OpenAIServingModels
from vllm.entrypoints.serve.engine.protocol import ErrorResponse
from vllm.renderers.chat_utils import load_chat_template
from vllm.renderers.online_renderer import OnlineRenderer
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.engine.async_llm import AsyncLLM

from ..errors import InvalidJsonSchema, ServiceError, error_response, invalid_openai_request
from .json_schema_guard import GrammarCompileGuard, check_json_schema

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 10  # vLLM's bound: one malformed body can fail thousands of checks


def frontend_defaults() -> Namespace:
    """``vllm serve``'s frontend arguments, all at their defaults."""
    return make_arg_parser(FlexibleArgumentParser()).parse_args([])


class OpenAIServing:
    """vLLM's chat and completion serving objects over one ``AsyncLLM``."""

    def __init__(self, llm: AsyncLLM, model_name: str, model_path: str, schemas: GrammarCompileGuard) -> None:
        args = frontend_defaults()
        self._schemas = schemas
        template = load_chat_template(args.chat_template)
        template_kwargs = resolve_default_chat_template_kwargs(args)
        reasoning_parser = args.structured_outputs_config.reasoning_parser
        models = OpenAIServingModels(engine_client=llm,
                                     base_model_paths=[BaseModelPath(name=model_name, model_path=model_path)])
        renderer = OnlineRenderer(
            model_config=llm.model_config, renderer=llm.renderer, request_logger=None,
            chat_template=template, chat_template_content_format=args.chat_template_content_format,
            trust_request_chat_template=args.trust_request_chat_template,
            trust_request_mm_kwargs=args.trust_request_mm_kwargs,
            enable_auto_tools=args.enable_auto_tool_choice,
            exclude_tools_when_tool_choice_none=args.exclude_tools_when_tool_choice_none,
            tool_parser=args.tool_call_parser, tool_strict_level=args.tool_strict_level,
            reasoning_parser=reasoning_parser, default_chat_template_kwargs=template_kwargs,
            log_error_stack=args.log_error_stack)
        renderer.warmup()
        self._chat = OpenAIServingChat(
            engine_client=llm, models=models, response_role=args.response_role, online_renderer=renderer,
            request_logger=None, chat_template=template,
            chat_template_content_format=args.chat_template_content_format,
            default_chat_template_kwargs=template_kwargs,
            trust_request_chat_template=args.trust_request_chat_template,
            return_tokens_as_token_ids=args.return_tokens_as_token_ids,
            enable_auto_tools=args.enable_auto_tool_choice,
            exclude_tools_when_tool_choice_none=args.exclude_tools_when_tool_choice_none,
            tool_parser=args.tool_call_parser, tool_strict_level=args.tool_strict_level,
            reasoning_parser=reasoning_parser,
            enable_prompt_tokens_details=args.enable_prompt_tokens_details,
            enable_force_include_usage=args.enable_force_include_usage,
            enable_log_outputs=args.enable_log_outputs, enable_log_deltas=args.enable_log_deltas,
            enable_per_request_metrics=args.enable_per_request_metrics)
        self._completion = OpenAIServingCompletion(
            llm, models, online_renderer=renderer, request_logger=None,
            return_tokens_as_token_ids=args.return_tokens_as_token_ids,
            enable_prompt_tokens_details=args.enable_prompt_tokens_details,
            enable_force_include_usage=args.enable_force_include_usage,
            enable_per_request_metrics=args.enable_per_request_metrics)

    async def chat(self, body: Any, raw_request: Request) -> Response:
        """``POST /v1/chat/completions`` for an already decoded JSON body."""
        return await self._answer(ChatCompletionRequest, body, raw_request,
                                  lambda r: self._chat.create_chat_completion(r, raw_request))

    async def completion(self, body: Any, raw_request: Request) -> Response:
        """``POST /v1/completions`` for an already decoded JSON body."""
        return await self._answer(CompletionRequest, body, raw_request,
                                  lambda r: self._completion.create_completion(r, raw_request))

    async def _check_schema(self, request: Any) -> None:
        """A JSON schema from ``response_format`` / ``structured_outputs``: the limits and the
        timed grammar compile that ``/generate`` applies (vLLM has no compile time limit)."""
        structured = request.extract_structured_outputs()
        schema = getattr(structured, "json", None) if structured is not None else None
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as exc:
                raise InvalidJsonSchema(f"json_schema is not JSON: {exc}") from exc
        if schema is not None:
            check_json_schema(schema)
            await self._schemas.check(schema)

    async def _answer(self, model: type, body: Any, raw_request: Request, create) -> Response:
        if not isinstance(body, dict):
            return error_response("the request body must be a JSON object", 400, openai=True)
        try:
            request = model.model_validate(body)
            await self._check_schema(request)
            result = await create(request)
        except ValidationError as exc:
            return invalid_openai_request(exc.errors()[:MAX_REPORTED_ERRORS])
        except InvalidJsonSchema as exc:  # a bad parameter: OpenAI's 400
            return error_response(str(exc), 400, openai=True, param="response_format")
        except ServiceError as exc:  # grammar compilation congested: 503 with Retry-After, as on /generate
            return error_response(str(exc), exc.status, retry_after=exc.retry_after, openai=True)
        except Exception as exc:  # vLLM's own mapping: client errors 4xx, the rest 5xx
            err = self._chat.create_error_response(exc)
            if err.error.code >= 500:
                log.error("openai %s: %s: %s", raw_request.url.path, type(exc).__name__, exc)
            return JSONResponse(err.model_dump(), status_code=err.error.code)
        if isinstance(result, ErrorResponse):
            return JSONResponse(result.model_dump(), status_code=result.error.code)
        if hasattr(result, "model_dump"):
            return JSONResponse(result.model_dump())
        return StreamingResponse(result, media_type="text/event-stream")
