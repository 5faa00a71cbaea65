"""Sampling parameters as they travel on the wire (KnowLM names), engine-agnostic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SamplingOptions(BaseModel):
    """KnowLM-compatible ``parameters``. Unknown keys are refused with a 422."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1 means all tokens")
    max_tokens: int = Field(16, ge=1, le=32768)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stop: list[str] | str | None = None
    seed: int | None = None
    num_beams: int = Field(1, ge=1, le=1, description="beam search is not supported; must be 1")

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)
