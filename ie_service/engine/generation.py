"""What an engine answers (a generation, its activity) and how it fails, without importing vllm.
The engine interface itself is :mod:`.interface`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import PromptTooLong, Unavailable

__all__ = ["EngineActivity", "EngineUnavailable", "Generation", "PromptTooLong", "char_offsets"]


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
