"""The engine as the rest of the service sees it: one declared interface, no vllm import.

:class:`~ie_service.engine.vllm_engine.Engine` implements it in production, the scripted fake
of ``tests/fakes.py`` in fast tests. Callers (extraction, the API routes, the supervisor) use
these members and nothing else, so they never need to ask whether an engine has one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .generation import EngineActivity, Generation
from .sampling import SamplingOptions

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ..models.prompt_formats import PromptFormat

__all__ = ["OpenAIAPI", "TextEngine"]


class OpenAIAPI(Protocol):
    """The OpenAI-compatible API over an engine (vLLM's serving layer): each call answers a
    Starlette response for an OpenAI request body."""

    async def chat(self, body: Any, raw_request: Request) -> Response: ...

    async def completion(self, body: Any, raw_request: Request) -> Response: ...


@runtime_checkable
class TextEngine(Protocol):
    """A started engine: what it serves, what it is doing, and how to ask it."""

    # --- the model ---------------------------------------------------------------------
    model_name: str  # the served name
    replicas: int  # data-parallel engine replicas serving requests
    adapters: dict[str, str]  # run-time LoRA adapters (serve --lora): name → version
    # the answer shape the model was trained on (extraction.constraints): "full" or
    # "compact"; adapter_shapes: the same per run-time adapter ("full" when it declares none)
    answer_shape: str
    adapter_shapes: dict[str, str]
    # the model family's prompt format and why it was chosen; None: the engine renders
    # prompts its own way (a test's scripted engine)
    prompt_format: PromptFormat | None
    prompt_format_reason: str | None

    @property
    def max_model_len(self) -> int: ...

    @property
    def run_dtype(self) -> str | None:
        """The dtype the weights run in (None: not inspected)."""
        ...

    @property
    def quantization(self) -> str | None:
        """The quantization method (None: none)."""
        ...

    # --- what it is doing --------------------------------------------------------------
    in_flight: int  # generations started and not ended

    @property
    def last_progress(self) -> float:
        """``time.monotonic()`` when an output last arrived or an engine step last completed
        (the supervisor's health: busy versus hung); 0.0 when the engine reports none."""
        ...

    def activity(self) -> EngineActivity:
        """Steps, requests held and requests finished per replica, as the engine counts them."""
        ...

    # --- asking it ---------------------------------------------------------------------
    # the OpenAI-compatible API (built on first call); None: this engine has none
    openai: Callable[[], OpenAIAPI] | None

    def render(self, instruction: str, input: str = "") -> str:
        """Apply the model family's prompt format."""
        ...

    def count_tokens(self, text: str) -> int: ...

    async def generate(
        self, prompt: str, options: SamplingOptions, json_schema: dict[str, Any] | None = None,
        grammar: str | None = None, adapter: str | None = None, priority: int | None = None,
        logprobs: bool = False,
    ) -> Generation:
        """Complete an already rendered prompt. ``json_schema`` or ``grammar`` (xgrammar
        EBNF, e.g. a grounded answer grammar) constrains the output, at most one of them;
        ``adapter``: one of :attr:`adapters` (None: the served model alone); ``priority``
        (lower first; None: the current request's, see ``admission``); ``logprobs``: fill
        ``token_logprobs`` and ``token_offsets`` (extraction's confidences)."""
        ...

    async def check_health(self) -> None:
        """Raise if the engine core is dead."""
        ...

    def shutdown(self) -> None: ...
