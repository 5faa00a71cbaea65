"""The arguments the engine is built with, and every refusal of them, computed without vLLM.

``serve``'s :func:`~ie_service.engine.start_plan.preflight` computes them before anything
imports vllm (about 10 s), so a model, memory or parallel layout that cannot start is refused
in a second, naming the flag to change; the engine is built from the plan's arguments.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from ..errors import UserInputError
from ..models.adapters import RuntimeAdapter, parse_lora
from ..models.footprint import ModelFootprint
from ..models.folder import BrokenModelFolder, NotAModelFolder, check_weight_files
from ..models.inspection import ModelInspection, inspect_model, plan_dtype
from ..models.tokenizer_choice import MODE as SENTENCEPIECE, TokenizerChoice, choose_tokenizer
from .config import EngineConfig
from .host import GiB, HostShape, plan_kv_cache, read_host
from .parallel import ParallelPlan, check_parallel, local_cpu_groups

# The engine core builds its scheduler by name (engine/fair_scheduler.py imports vLLM; this does not).
FAIR_SCHEDULER = "ie_service.engine.fair_scheduler.FairShareScheduler"
FAIR_SHARE_KEY = "ie_fair_share_prefill_tokens"  # in vLLM's additional_config

log = logging.getLogger(__name__)


KV_CACHE_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"  # vLLM's legacy CPU setting, GiB (overrides ours)
STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def is_cpu_backend(environ: Mapping[str, str] | None = None) -> bool:
    """Whether vLLM will run on its CPU platform, by vLLM's own rule (``vllm.platforms``'
    ``cpu_platform_plugin``) but without importing vllm (~10 s): ``VLLM_TARGET_DEVICE=cpu``,
    a vLLM build whose version says ``cpu`` (the ``vllm-cpu`` distribution), or macOS."""
    environ = os.environ if environ is None else environ
    if environ.get("VLLM_TARGET_DEVICE", "cuda").lower() == "cpu" or sys.platform.startswith("darwin"):
        return True
    try:
        return "cpu" in metadata.version("vllm")
    except metadata.PackageNotFoundError:
        try:
            metadata.version("vllm-cpu")
        except metadata.PackageNotFoundError:
            return False
        return True  # vLLM reads this distribution's version as "<version>+cpu"


CPU_RESERVE_BYTES = 3 * 1024**3


def default_memory_utilization(on_cpu: bool) -> float:
    """``gpu_memory_utilization`` default: 0.9 of a GPU. (On the CPU backend the engine
    sizes the KV cache explicitly instead, see :func:`memory_kwargs`; this legacy value is
    the fraction of host memory that reserves about 3 GiB, at most 0.3.)"""
    if not on_cpu:
        return 0.9
    total = psutil.virtual_memory().total
    return round(min(0.3, CPU_RESERVE_BYTES / total), 3)


class ModelRefused(UserInputError, ValueError):
    """A model the engine cannot serve as it is; the message names the fix."""


# vLLM's CPU attention backend takes KV blocks of a multiple of 32 tokens
# (CPUAttentionBackend.get_supported_kernel_block_sizes: MultipleOf(32); 16 is refused at start).
CPU_BLOCK_MULTIPLE = 32


class BlockSizeRefused(UserInputError, ValueError):
    """A ``--block-size`` the backend's attention kernel does not take."""


def block_size_choice(config: EngineConfig, *, on_cpu: bool) -> tuple[int | None, str]:
    """(KV block size, why); None leaves vLLM's default (GPU).

    vLLM's prefix cache reuses whole KV blocks only: a prompt part shared by many requests
    (chat template, instruction, schema, examples: everything before the text) is computed
    once only for the blocks it fills. On the CPU backend vLLM's default block is 128 tokens,
    longer than a typical extraction prompt's shared part, so nothing was reused; the smallest
    block its kernel takes is the default here. On a GPU vLLM's default (16) already is small."""
    if config.block_size is not None:
        if on_cpu and config.block_size % CPU_BLOCK_MULTIPLE:
            raise BlockSizeRefused(
                f"--block-size {config.block_size}: vLLM's CPU backend takes KV blocks of a multiple "
                f"of {CPU_BLOCK_MULTIPLE} tokens; use {CPU_BLOCK_MULTIPLE} (the finest prefix reuse) or "
                f"{(config.block_size // CPU_BLOCK_MULTIPLE + 1) * CPU_BLOCK_MULTIPLE}")
        return config.block_size, "--block-size"
    if on_cpu:
        return CPU_BLOCK_MULTIPLE, ("the CPU backend's smallest block, so the prefix cache reuses a shared "
                                    "prompt part in steps of 32 tokens (vLLM's CPU default is 128)")
    return None, "vLLM's default for the device"


def resolve_dtype(dtype: str, on_cpu: bool, host: HostShape | None = None, quantized: bool = False) -> str:
    """The dtype the engine runs in (:func:`~ie_service.models.inspection.plan_dtype`):
    ``auto`` on the CPU backend is bf16 where the CPU has native bf16, else float32, and
    always bf16 for a quantized checkpoint; on a GPU vLLM decides."""
    native = bool(on_cpu and (host or read_host()).native_bf16)
    return plan_dtype(dtype, "unknown", on_cpu=on_cpu, native_bf16=native, quantized=quantized)[0]


def inspect_for(config: EngineConfig, model_path: str, *, on_cpu: bool,
                host: HostShape | None = None) -> ModelInspection | None:
    """The inspection the engine starts with (None: not a local folder, e.g. a hub id)."""
    host = host if host is not None or not on_cpu else read_host()
    try:
        return inspect_model(model_path, dtype=config.dtype, on_cpu=on_cpu, host=host,
                             served_name=config.served_model_name,
                             tensor_parallel_size=config.tensor_parallel_size)
    except BrokenModelFolder:
        raise  # a folder, but its config.json is not a model config: never a hub id
    except NotAModelFolder:
        return None


def env_kv_cache_gib(environ: Mapping[str, str]) -> float | None:
    """``VLLM_CPU_KVCACHE_SPACE`` as vLLM reads it (GiB); None when unset or not an integer."""
    raw = environ.get(KV_CACHE_SPACE_ENV, "")
    if not raw.strip():
        return None
    try:
        return float(int(raw))  # vLLM reads it with int()
    except ValueError:
        return None


def memory_kwargs(config: EngineConfig, model_path: str, dtype: str, plan: ParallelPlan, *, on_cpu: bool,
                  host: HostShape | None = None,
                  environ: Mapping[str, str] | None = None, quantized: bool = False) -> dict[str, Any]:
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
        requested = env_kv_cache_gib(environ)
        if requested is not None:
            flag = KV_CACHE_SPACE_ENV
        elif config.gpu_memory_utilization is not None:
            return {"gpu_memory_utilization": config.gpu_memory_utilization}
    host = host if host is not None else read_host()
    workers = local_cpu_groups(plan, host)
    kv = plan_kv_cache(
        host,
        requested_gib=requested,
        footprint=ModelFootprint.of(model_path, dtype, config.tensor_parallel_size, quantized=quantized),
        max_model_len=config.max_model_len,
        worker_cpus=[group[0] for group in workers],
        flag=flag,
    )
    log.info("%s", kv.explanation)
    return {"kv_cache_memory_bytes": kv.kv_cache_bytes}


def tokenizer_kwargs(choice: TokenizerChoice) -> dict[str, Any]:
    """vLLM's tokenizer mode for the tokenizer chosen
    (:func:`~ie_service.models.tokenizer_choice.choose_tokenizer`): nothing for the fast
    tokenizer; the registered sentencepiece mode otherwise, with the ``hf_overrides`` that
    makes vLLM's spawned engine core register it too."""
    if choice.mode != SENTENCEPIECE:
        return {}
    from .sp_tokenizer import keep_hf_config  # imports vllm: only for the folders that need the mode

    return {"tokenizer_mode": SENTENCEPIECE, "hf_overrides": keep_hf_config}


VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values


def lora_engine_kwargs(adapters: list[RuntimeAdapter]) -> dict[str, Any]:
    """vLLM's LoRA arguments for ``adapters`` (none when there are none)."""
    if not adapters:
        return {}
    rank = max(a.rank for a in adapters)
    fits = [r for r in VLLM_RANKS if r >= rank]
    if not fits:
        raise ValueError(f"adapter rank {rank} is over vLLM's largest, {VLLM_RANKS[-1]}")
    return {"enable_lora": True, "max_loras": len(adapters), "max_lora_rank": fits[0]}


def engine_kwargs(config: EngineConfig, model_path: str, *, on_cpu: bool,
                  host: HostShape | None = None,
                  environ: Mapping[str, str] | None = None,
                  headless: bool = False,
                  inspection: ModelInspection | None = None) -> dict[str, Any]:
    """Everything :class:`AsyncEngineArgs` (or ``vllm.LLM``) is built with, the folder
    inspected and the tokenizer chosen here (a start has them in its
    :class:`~ie_service.engine.start_plan.StartPlan`). Pure apart from reading the host
    (``host`` injects it) and the model folder (``inspection``), so tests check it without
    an engine; raises as :func:`vllm_kwargs`."""
    if on_cpu and host is None:
        host = read_host()
    if inspection is None:
        inspection = inspect_for(config, model_path, on_cpu=on_cpu, host=host)
    return vllm_kwargs(config, model_path, on_cpu=on_cpu, host=host, environ=environ, headless=headless,
                       inspection=inspection, block=block_size_choice(config, on_cpu=on_cpu),
                       tokenizer=choose_tokenizer(config.tokenizer or model_path, config.tokenizer_mode))


def vllm_kwargs(config: EngineConfig, model_path: str, *, on_cpu: bool, host: HostShape | None,
                environ: Mapping[str, str] | None, headless: bool, inspection: ModelInspection | None,
                block: tuple[int | None, str], tokenizer: TokenizerChoice) -> dict[str, Any]:
    """The engine arguments for the inspection made, the KV block chosen
    (:func:`block_size_choice`) and the tokenizer chosen. Raises :class:`UnknownQuantization`,
    :class:`ModelRefused` for a checkpoint vLLM refuses (naming the fix),
    :class:`~ie_service.engine.parallel.ParallelismError` for a parallel layout that cannot
    start, :class:`~ie_service.engine.host.KVCacheDoesNotFit` for memory."""
    check_quantization(config.quantization)
    if inspection is not None and inspection.refusal:
        raise ModelRefused(inspection.refusal)
    plan = check_parallel(config, model_path, on_cpu=on_cpu, host=host, headless=headless)
    quant = inspection.quantization if inspection is not None else None
    if inspection is not None:
        dtype = inspection.run_dtype
    else:
        dtype = resolve_dtype(config.dtype, on_cpu, host)
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": config.tokenizer,
        "served_model_name": config.served_model_name,
        "dtype": dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "data_parallel_size": config.data_parallel_size,
        "max_model_len": config.max_model_len,
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        # every step reports its stats: StepStats (health's step clock, per-replica load) and
        # vLLM's own periodic log line while it works
        "disable_log_stats": False,
        # Compact JSON under constraints: LLaMA models otherwise loop on whitespace.
        "structured_outputs_config": dict(STRUCTURED_OUTPUTS),
        # issue 20 (fair share): each prompt carries its request's size as priority, so a
        # small request is scheduled before a big one's waiting prompts
        "scheduling_policy": "priority",
        # issue 31 (fair share): while such a request is in, the bigger ones' prefill waits
        "scheduler_cls": FAIR_SCHEDULER,
        "additional_config": {FAIR_SHARE_KEY: config.fair_share_prefill_tokens},
    }
    if config.nnodes > 1:
        kwargs.update(nnodes=config.nnodes, node_rank=config.node_rank, master_addr=config.master_addr,
                      master_port=config.master_port, distributed_executor_backend="mp")
    if config.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = config.max_num_batched_tokens
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    if config.long_prefill_token_threshold:
        kwargs["long_prefill_token_threshold"] = config.long_prefill_token_threshold
    if block[0] is not None:
        kwargs["block_size"] = block[0]
    if config.quantization:
        kwargs["quantization"] = config.quantization
    elif quant is not None and quant.pass_flag:
        kwargs["quantization"] = quant.method  # vLLM reads quantize_config.json only when told
    kwargs.update(lora_engine_kwargs(parse_lora(config.lora)))  # serve --lora: run-time adapters
    kwargs.update(memory_kwargs(config, model_path, dtype, plan, on_cpu=on_cpu, host=host, environ=environ,
                                quantized=quant is not None))
    kwargs.update(tokenizer_kwargs(tokenizer))  # last: the sentencepiece mode imports vllm
    return kwargs


class UnknownQuantization(UserInputError, ValueError):
    """A ``--quantization`` vLLM has no method for."""


def quantization_methods() -> tuple[str, ...] | None:
    """vLLM's quantization method names, read from its source without importing vllm (the
    ``QuantizationMethods`` literal); None when vLLM is not installed or the list moved."""
    import ast
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("vllm")  # on sys.path, whatever sys.modules holds; runs nothing
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "model_executor/layers/quantization/__init__.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "QuantizationMethods" for t in node.targets)
                and isinstance(node.value, ast.Subscript)):
            names = [e.value for e in ast.walk(node.value.slice) if isinstance(e, ast.Constant)]
            return tuple(n for n in names if isinstance(n, str)) or None
    return None


def check_quantization(method: str | None) -> None:
    """Refuse a ``--quantization`` vLLM does not know, before it is imported."""
    if method is None:
        return
    known = quantization_methods()
    if known is not None and method not in known:
        raise UnknownQuantization(f"--quantization {method!r}: vLLM has no such method; choose one of "
                                  f"{', '.join(known)} (or leave it out: the folder's config says)")
