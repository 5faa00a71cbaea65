"""Sampling parameters as they travel on the wire (KnowLM names), engine-agnostic.

The bounds are vLLM's own (``SamplingParams._verify_args`` in vLLM 0.32): a value the
engine would refuse is a 422 here, never a 500 from inside the engine; and ours where vLLM
has none (issue 31: ``top_k``, the length of stop strings)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEMPERATURE = 2.0  # vLLM: "temperature must be in [0, 2]"
# torch.Generator.manual_seed takes [-2**63, 2**64 - 1]; vLLM passes the seed through
# (a larger one failed inside the engine: 503 "engine failed: " before this check)
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1
MAX_STOP_STRINGS = 16
# issue 31: vLLM looks for every stop string in the text's tail at each token, so their
# length is work per token (a 100,000-character stop was accepted)
MAX_STOP_CHARS = 256
# above any vocabulary in use (Gemma 3: 262,144 tokens); "all tokens" is -1
MAX_TOP_K = 262_144
MAX_OUTPUT_TOKENS = 32768  # max_tokens; also the cap on counts in a client's json_schema


class SamplingOptions(BaseModel):
    """KnowLM-compatible ``parameters``. Unknown keys are refused with a 422."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no coercion: ``true`` is not 1

    temperature: float = Field(1.0, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, le=MAX_TOP_K, description="-1 (or 0) means all tokens")
    max_tokens: int = Field(16, ge=1, le=MAX_OUTPUT_TOKENS)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stop: list[str] | str | None = Field(None, description=f"non-empty strings, at most {MAX_STOP_STRINGS} "
                                                              f"of at most {MAX_STOP_CHARS} characters")
    seed: int | None = Field(None, ge=MIN_SEED, le=MAX_SEED)
    num_beams: int = Field(1, ge=1, le=1, description="beam search is not supported; must be 1")

    # A subclass may re-declare a field with looser bounds (extraction's parameters did
    # with temperature <= 10); validators are inherited, so the engine's limits hold there too.
    @field_validator("temperature")
    @classmethod
    def _temperature_in_engine_range(cls, value: float) -> float:
        if not 0.0 <= value <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE:g}] (the engine's range)")
        return value

    @field_validator("stop")
    @classmethod
    def _stop_strings_bounded(cls, value: list[str] | str | None) -> list[str] | str | None:
        return check_stop(value)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


def check_stop(value: list[str] | str | None) -> list[str] | str | None:
    """``value`` unless a stop string is empty or too long, or there are too many (ValueError)."""
    items = [value] if isinstance(value, str) else (value or [])
    if any(s == "" for s in items):
        raise ValueError("stop strings must not be empty")
    if len(items) > MAX_STOP_STRINGS:
        raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
    longest = max(map(len, items), default=0)
    if longest > MAX_STOP_CHARS:
        raise ValueError(f"a stop string has {longest} characters; at most {MAX_STOP_CHARS}")
    return value
