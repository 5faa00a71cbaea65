"""What the rest of the service needs from an engine, without importing vllm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .sampling import SamplingOptions


class PromptTooLong(ValueError):
    """The prompt plus the requested new tokens does not fit the model's context."""


class EngineUnavailable(RuntimeError):
    """The engine core died or refused work; the service cannot answer (503)."""


@dataclass(frozen=True)
class Generation:
    """One finished completion."""

    text: str
    num_prompt_tokens: int
    num_output_tokens: int
    finish_reason: str | None

    @property
    def truncated(self) -> bool:
        """Cut off at max_tokens: under a JSON constraint this is never valid output."""
        return self.finish_reason == "length"


class TextEngine(Protocol):
    """The engine as the API and extraction layers see it (``vllm_engine.Engine`` in
    production, a scripted fake in fast unit tests)."""

    model_name: str
    max_model_len: int
    replicas: int  # data-parallel engine replicas serving requests
    adapters: dict[str, str]  # run-time LoRA adapters (serve --lora): name → version

    def replica_requests(self) -> dict[int, int]:
        """Requests finished per replica (empty with one replica)."""
        ...

    def render(self, instruction: str, input: str = "") -> str: ...

    def count_tokens(self, text: str) -> int: ...

    async def generate(
        self, prompt: str, options: SamplingOptions, json_schema: dict[str, Any] | None = None,
        grammar: str | None = None, adapter: str | None = None,
    ) -> Generation:
        """``json_schema`` or ``grammar`` (xgrammar EBNF, e.g. a grounded answer grammar)
        constrains the output, at most one of them; ``adapter``: one of :attr:`adapters`
        (None: the served model alone)."""
        ...

    async def check_health(self) -> None: ...

    def shutdown(self) -> None: ...
