"""What the rest of the service needs from an engine, without importing vllm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import PromptTooLong, Unavailable
from .sampling import SamplingOptions

__all__ = ["EngineActivity", "EngineUnavailable", "Generation", "PromptTooLong", "TextEngine", "char_offsets"]


class EngineUnavailable(Unavailable):
    """The engine core died or refused work; the service cannot answer (503, Retry-After)."""


@dataclass(frozen=True)
class Generation:
    """One finished completion."""

    text: str
    num_prompt_tokens: int
    num_output_tokens: int
    finish_reason: str | None
    num_cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache (not computed)
    # asked for with generate(logprobs=True), else empty: the log-probability of each output
    # token under the distribution it was picked from (after the grammar mask), and the
    # character offset in ``text`` where each token starts (a token that only completes a
    # multi-byte character starts where that character does)
    token_logprobs: tuple[float, ...] = ()
    token_offsets: tuple[int, ...] = ()

    @property
    def truncated(self) -> bool:
        """Cut off at max_tokens: under a JSON constraint this is never valid output."""
        return self.finish_reason == "length"


def char_offsets(decode: Callable[[Sequence[int]], str], ids: Sequence[int], text: str) -> tuple[int, ...]:
    """Where each token of ``ids`` starts in ``text`` (their detokenized form): the length of
    the decoded prefix before it. A prefix that ends inside a multi-byte character decodes
    to a trailing U+FFFD, which is not counted. Quadratic in tokens but cheap (about 20 ms
    for 400 tokens with a fast tokenizer); ``text`` may have a leading space the prefix
    decode drops (SentencePiece), which shifts every offset but the first."""
    full = decode(ids)
    shift = len(text) - len(full) if len(text) > len(full) and text.endswith(full) else 0
    out = []
    for i in range(len(ids)):
        start = len(decode(ids[:i]).rstrip("\ufffd")) + (shift if i else 0)
        out.append(min(start, len(text)))
    return tuple(out)


@dataclass(frozen=True)
class EngineActivity:
    """What the engine reports of its own work (``/metrics``)."""

    steps: int = 0  # engine steps completed since start: stays put while the engine holds no work
    unfinished: int = 0  # requests the engine holds (vLLM's count: an aborted one is gone from it)
    finished_by_replica: dict[int, int] = field(default_factory=dict)  # only with 2+ data-parallel replicas


class TextEngine(Protocol):
    """The engine as the API and extraction layers see it (``vllm_engine.Engine`` in
    production, a scripted fake in fast unit tests)."""

    model_name: str
    max_model_len: int
    replicas: int  # data-parallel engine replicas serving requests
    adapters: dict[str, str]  # run-time LoRA adapters (serve --lora): name → version
    # the answer shape the model was trained on (extraction.constraints): "full" or "compact";
    # adapter_shapes: the same per run-time adapter (optional: absent means "full")
    answer_shape: str

    def activity(self) -> EngineActivity:
        """Steps, requests held and requests finished per replica, as the engine counts them."""
        ...

    def render(self, instruction: str, input: str = "") -> str: ...

    def count_tokens(self, text: str) -> int: ...

    async def generate(
        self, prompt: str, options: SamplingOptions, json_schema: dict[str, Any] | None = None,
        grammar: str | None = None, adapter: str | None = None, logprobs: bool = False,
    ) -> Generation:
        """``json_schema`` or ``grammar`` (xgrammar EBNF, e.g. a grounded answer grammar)
        constrains the output, at most one of them; ``adapter``: one of :attr:`adapters`
        (None: the served model alone); ``logprobs``: fill ``token_logprobs`` and
        ``token_offsets`` (extraction's confidences)."""
        ...

    async def check_health(self) -> None: ...

    def shutdown(self) -> None: ...
