"""Wire formats of the generic endpoints (KnowLM-compatible ``/generate``)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engine import SamplingOptions, check_json_schema


class GenerateRequest(BaseModel):
    """KnowLM ``POST /generate`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instruction: str = Field(..., min_length=1, description="the task, in words")
    input: str = Field("", description="the text the instruction applies to")
    parameters: SamplingOptions = Field(default_factory=SamplingOptions)
    json_schema: dict[str, Any] | None = Field(
        None, description="extension: constrain the output to this JSON schema"
    )
    adapter: str | None = Field(None, description="extension: a LoRA adapter loaded with serve --lora "
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
