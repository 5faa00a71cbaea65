"""A scripted engine for fast unit tests of routing and parsing (never used end to end), and a
stand-in for vLLM's ``AsyncLLM`` under the real :class:`~ie_service.engine.vllm_engine.Engine`."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from ie_service.models.adapters import check_adapter
from ie_service.engine.generation import EngineActivity, Generation, PromptTooLong
from ie_service.engine.sampling import SamplingOptions


class ScriptedEngine:
    """The engine interface (``ie_service.engine.interface.TextEngine``), scripted: answers each
    prompt with ``reply(prompt, schema)``; records what it was asked (``calls``; the grammar
    of each call, if any, in ``grammars``)."""

    model_name = "scripted"
    max_model_len = 512
    replicas = 1
    prompt_format = None  # renders instruction and input as they are (``render``)
    prompt_format_reason = None
    run_dtype = None
    quantization = None
    # reports no activity of its own: tests of the supervisor set these to play one
    in_flight = 0
    last_progress = 0.0
    openai = None  # no OpenAI-compatible API unless a test gives one: ``lambda: api``

    def __init__(self, reply: Callable[[str, dict | None], str] = lambda p, s: "ok",
                 adapters: dict[str, str] | None = None, answer_shape: str = "full",
                 adapter_shapes: dict[str, str] | None = None) -> None:
        self.reply = reply
        self.adapters = dict(adapters or {})  # name → version, as `serve --lora` loads them
        self.answer_shape = answer_shape  # what the model writes: full or compact answers
        self.adapter_shapes = dict(adapter_shapes or {})
        self.calls: list[tuple[str, SamplingOptions, dict | None]] = []
        self.adapter_calls: list[str | None] = []  # the adapter each call asked for
        self.grammars: list[str | None] = []
        self.healthy = True
        self.token_logprob: Callable[[str, int], float] = lambda text, i: 0.0  # logprobs=True

    def render(self, instruction: str, input: str = "") -> str:
        return f"{instruction}\n{input}" if input else instruction

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(
        self, prompt: str, options: SamplingOptions, json_schema: dict[str, Any] | None = None,
        grammar: str | None = None, adapter: str | None = None, priority: int | None = None,
        logprobs: bool = False,
    ) -> Generation:
        check_adapter(adapter, self.adapters)
        n = self.count_tokens(prompt)
        if n + options.max_tokens > self.max_model_len:
            raise PromptTooLong(f"prompt has {n} tokens")
        self.calls.append((prompt, options, json_schema))
        self.adapter_calls.append(adapter)
        self.grammars.append(grammar)
        text = self.reply(prompt, json_schema)
        if not logprobs:
            return Generation(text, n, len(text.split()), "stop")
        # one token per character, log-probability from ``token_logprob`` (text, index)
        return Generation(text, n, len(text.split()), "stop",
                          token_logprobs=tuple(self.token_logprob(text, i) for i in range(len(text))),
                          token_offsets=tuple(range(len(text))))

    def activity(self) -> EngineActivity:
        return EngineActivity()

    async def check_health(self) -> None:
        if not self.healthy:
            raise RuntimeError("engine core died")

    def shutdown(self) -> None:
        pass


def slowed(engine: ScriptedEngine, delay: float) -> ScriptedEngine:
    """The engine with every generation taking ``delay`` seconds longer (for limit tests)."""
    if delay:
        import asyncio

        original = engine.generate

        async def slow(prompt, options, schema=None, **extra):
            await asyncio.sleep(delay)
            return await original(prompt, options, schema, **extra)

        engine.generate = slow
    return engine


class FakeAsyncLLM:
    """Stands in for vLLM's AsyncLLM: records the SamplingParams, answers or raises."""

    def __init__(self, tokenizer, finish: str = "stop", raises: BaseException | None = None) -> None:
        self.tokenizer, self.finish, self.raises = tokenizer, finish, raises
        self.calls = []
        self.model_config = SimpleNamespace(get_vocab_size=lambda: 49152)

    def get_tokenizer(self):
        return self.tokenizer

    async def generate(self, prompt, params, request_id, **kwargs):
        self.calls.append(params)
        if self.raises is not None:
            raise self.raises
        yield SimpleNamespace(num_cached_tokens=0, outputs=[SimpleNamespace(
            text="" if self.finish == "error" else '{"a": 1}', token_ids=[1, 2], finish_reason=self.finish)])

    def get_num_unfinished_requests(self) -> int:
        return 0

    async def check_health(self):
        return None

    def shutdown(self):
        return None
