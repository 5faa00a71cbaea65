"""Wire formats of the generic endpoints (KnowLM-compatible ``/generate``) and the strict
check of the OpenAI routes' bodies."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..engine import SamplingOptions, check_json_schema
from ..engine.json_schema_guard import MAX_ENUM_VALUES, MAX_PATTERN_SIZE, pattern_size
from ..engine.sampling import (
    MAX_OUTPUT_TOKENS, MAX_SEED, MAX_TEMPERATURE, MAX_TOP_K, MIN_SEED, check_stop,
)
from ..extraction.wire import Name


class GenerateRequest(BaseModel):
    """KnowLM ``POST /generate`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instruction: str = Field(..., min_length=1, description="the task, in words")
    input: str = Field("", description="the text the instruction applies to")
    parameters: SamplingOptions = Field(default_factory=SamplingOptions)
    json_schema: dict[str, Any] | None = Field(
        None, description="extension: constrain the output to this JSON schema"
    )
    adapter: Name | None = Field(None, description="extension: a LoRA adapter loaded with serve --lora "
                                                  "NAME=PATH (see /v1/models); default: the served model")

    # issue 12 #2/#4/#5: size, enum/const count, depth, meta-schema, $ref targets and loops → 422
    @field_validator("json_schema")
    @classmethod
    def _checked_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_schema(value)
        return value


class GenerateResponse(BaseModel):
    generated_text: str
    num_output_tokens_cf: int
    finish_reason: str | None = None
    error: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    error: str
    detail: list[dict] | None = None


class HealthResponse(BaseModel):
    status: str
    model: str


STARTED = int(time.time())


class UnhealthyResponse(BaseModel):
    """``/health`` when the engine cannot serve."""

    error: str
    status: str = Field(description="starting, restarting, hung, dead or failed")


class ModelCard(BaseModel):
    """OpenAI's model object (``id``, ``object``, ``created``, ``owned_by``) and our fields."""

    id: str
    object: str = "model"
    created: int = Field(STARTED, description="when this service started (Unix seconds)")
    owned_by: str = "ie-service"
    max_model_len: int
    replicas: int = Field(1, description="engine replicas (data parallel): a client keeps about "
                                         "this many times more requests in flight")
    parent: str | None = Field(None, description="a run-time adapter's base: the served model")
    version: str | None = Field(None, description="a run-time adapter's version (its manifest's)")
    prompt_format: str | None = Field(None, description="the prompt format the model is served with")
    prompt_format_reason: str | None = Field(None, description="why that format (the evidence, or the flag)")
    dtype: str | None = Field(None, description="the dtype the engine runs in")
    quantization: str | None = Field(None, description="vLLM's quantization method, if any")


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


# --- the OpenAI routes: checked strictly before vLLM's serving layer (issue 31) ---------------
# vLLM's request models coerce ("2" is 2, "yes" is true), take any role, clamp logit_bias and
# ignore best_of; these models refuse that (400, as OpenAI and vLLM answer). Only the fields
# named here are checked; the body goes to vLLM as it came (its own checks still follow).

MAX_LOGIT_BIAS = 100.0  # OpenAI's range: -100..100
MAX_LOGIT_BIAS_TOKENS = 300  # OpenAI's cap on biased tokens
MAX_LOGPROBS = 20  # vLLM's default max_logprobs (OpenAI: top_logprobs 0..20)
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
TokenId = Annotated[str, Field(pattern=r"^[0-9]{1,9}$")]  # logit_bias keys: token ids as text
TokenIndex = Annotated[int, Field(ge=0)]
Bias = Annotated[float, Field(ge=-MAX_LOGIT_BIAS, le=MAX_LOGIT_BIAS)]
Stop = Annotated[str | list[str] | None, AfterValidator(check_stop)]
UNBOUNDED_STRUCTURES = ("grammar", "structural_tag")  # compiled with no bound on their cost


def check_structure(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """vLLM's ``structured_outputs`` within the bounds of a ``json_schema`` (its ``json`` is
    checked as one, by the engine): a regex within the pattern bounds, at most
    :data:`MAX_ENUM_VALUES` choices; a grammar or structural tag refused (ValueError)."""
    if value is None:
        return None
    for key in UNBOUNDED_STRUCTURES:
        if value.get(key) is not None:
            raise ValueError(f"{key} is not accepted (its compile time cannot be bounded); "
                             "use response_format json_schema, or structured_outputs json, regex or choice")
    for key in ("regex", "whitespace_pattern"):
        pattern = value.get(key)
        if pattern is None:
            continue
        if not isinstance(pattern, str):
            raise ValueError(f"{key} must be a string")
        if pattern_size(pattern) > MAX_PATTERN_SIZE:
            raise ValueError(f"{key} expands to over {MAX_PATTERN_SIZE} characters with its repetitions counted")
    choices = value.get("choice")
    if isinstance(choices, list) and len(choices) > MAX_ENUM_VALUES:
        raise ValueError(f"choice lists {len(choices)} values; at most {MAX_ENUM_VALUES}")
    return value


Structure = Annotated[dict[str, Any] | None, AfterValidator(check_structure)]


class OpenAIMessage(BaseModel):
    """One chat message: a known role; the rest (tool calls, ...) is vLLM's to check."""

    model_config = ConfigDict(extra="allow", strict=True)

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: Name | None = None


class OpenAIRequest(BaseModel):
    """What ``/v1/chat/completions`` and ``/v1/completions`` share."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: Name | None = None
    max_tokens: int | None = Field(None, ge=0, le=MAX_OUTPUT_TOKENS)
    n: int | None = Field(1, ge=1, description="choices; each claims an engine prompt")
    temperature: float | None = Field(None, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1, le=MAX_TOP_K)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)
    stop: Stop = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    logit_bias: dict[TokenId, Bias] | None = Field(None, max_length=MAX_LOGIT_BIAS_TOKENS)
    response_format: dict[str, Any] | None = None
    structured_outputs: Structure = None
    user: Name | None = None


class ChatRequest(OpenAIRequest):
    messages: list[OpenAIMessage]
    max_completion_tokens: int | None = Field(None, ge=0, le=MAX_OUTPUT_TOKENS)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)


class CompletionRequest(OpenAIRequest):
    prompt: str | list[str] | list[TokenIndex] | list[list[TokenIndex]] | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool | None = False
    best_of: int | None = Field(None, ge=1)

    @field_validator("best_of")
    @classmethod
    def _best_of_is_n(cls, value: int | None, info: ValidationInfo) -> int | None:
        n = info.data.get("n") or 1
        if value is not None and value != n:
            raise ValueError(f"best_of must equal n ({n}): the engine does not rank extra samples")
        return value
