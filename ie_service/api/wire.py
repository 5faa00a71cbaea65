"""Wire formats of the generic endpoints (KnowLM-compatible ``/generate``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..sampling import SamplingOptions


class GenerateRequest(BaseModel):
    """KnowLM ``POST /generate`` body."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(..., min_length=1, description="the task, in words")
    input: str = Field("", description="the text the instruction applies to")
    parameters: SamplingOptions = Field(default_factory=SamplingOptions)
    json_schema: dict[str, Any] | None = Field(
        None, description="extension: constrain the output to this JSON schema"
    )


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


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    owned_by: str = "ie-service"
    max_model_len: int


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]
