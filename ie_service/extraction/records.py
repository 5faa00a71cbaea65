"""Typed extraction records shared by tasks (the response side of the wire format); each
task's own record types live in its module in ``tasks/``."""

from __future__ import annotations

from pydantic import BaseModel, Field


CONFIDENCE_HELP = ("how sure the model was, 0..1: the lowest probability among the output tokens "
                   "that wrote the span, its opening and closing quote included (null only when the "
                   "engine gave no log-probabilities)")


class Span(BaseModel):
    """A piece of the input. ``start``/``end`` are character offsets (end exclusive);
    both are null and ``grounded`` false when the model's string is not in the text."""

    text: str
    start: int | None = None
    end: int | None = None
    grounded: bool = False
    confidence: float | None = Field(None, ge=0.0, le=1.0, description=CONFIDENCE_HELP)


class Entity(Span):
    type: str | None = None


class ExtractionStats(BaseModel):
    """What happened on the way: counts a user (or ``eval``) can act on."""

    prompts: int = 0
    chunks: int = 0
    truncated: int = Field(0, description="outputs cut at max_tokens (discarded)")
    unparseable: int = Field(0, description="outputs no parser could read")
    ungrounded: int = Field(0, description="spans not found in the input")
    self_relations: int = Field(0, description="relations whose head and tail were the same span (dropped)")
    output_tokens: int = 0
    prompt_tokens: int = Field(0, description="prompt tokens of the engine prompts")
    cached_prompt_tokens: int = Field(0, description="of those, tokens the prefix cache supplied (not computed)")
    engine_seconds: float = Field(0.0, description="wall time of the engine prompts, summed (they run side by side)")
