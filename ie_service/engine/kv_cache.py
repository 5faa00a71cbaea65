"""How much memory vLLM's KV cache gets: the arguments that size it, from the dtype and the
CPU layout decided before it (no vllm import)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psutil

from ..models.footprint import ModelFootprint
from .config import EngineConfig
from .host import GiB, HostShape, plan_kv_cache

log = logging.getLogger(__name__)

KV_CACHE_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"  # vLLM's legacy CPU setting, GiB (overrides ours)
CPU_RESERVE_BYTES = 3 * 1024**3


def default_memory_utilization(on_cpu: bool) -> float:
    """``gpu_memory_utilization`` default: 0.9 of a GPU. (On the CPU backend the engine
    sizes the KV cache explicitly instead, see :func:`memory_kwargs`; this legacy value is
    the fraction of host memory that reserves about 3 GiB, at most 0.3.)"""
    if not on_cpu:
        return 0.9
    total = psutil.virtual_memory().total
    return round(min(0.3, CPU_RESERVE_BYTES / total), 3)


def env_kv_cache_gib(environ: Mapping[str, str]) -> float | None:
    """``VLLM_CPU_KVCACHE_SPACE`` as vLLM reads it (GiB); None when unset or not an integer."""
    raw = environ.get(KV_CACHE_SPACE_ENV, "")
    if not raw.strip():
        return None
    try:
        return float(int(raw))  # vLLM reads it with int()
    except ValueError:
        return None


def memory_kwargs(config: EngineConfig, model_path: str, dtype: str, workers: Sequence[tuple[int, ...]], *,
                  on_cpu: bool, host: HostShape | None, env_gib: float | None,
                  quantized: bool = False) -> dict[str, Any]:
    """How vLLM sizes its KV cache.

    GPU: ``gpu_memory_utilization`` (default 0.9), or an explicit ``kv_cache_memory_bytes``
    when ``--kv-cache-gib`` is given. CPU (``host`` given): always an explicit
    ``kv_cache_memory_bytes`` (vLLM 0.32's CPU worker honours it and then skips its
    fraction-of-one-NUMA-node arithmetic, which went negative on multi-node hosts), chosen by
    :func:`~ie_service.engine.host.plan_kv_cache` for the nodes this node's ``workers`` (their
    CPU groups, :func:`~ie_service.engine.parallel.cpu_layout`) allocate on and the cgroup
    limit; ``env_gib`` is :func:`env_kv_cache_gib`'s value. Only an explicit
    ``--gpu-memory-utilization`` without ``--kv-cache-gib`` keeps vLLM's fraction."""
    if not on_cpu:
        out: dict[str, Any] = {"gpu_memory_utilization": config.gpu_memory_utilization
                               or default_memory_utilization(False)}
        if config.kv_cache_gib is not None:
            out["kv_cache_memory_bytes"] = int(config.kv_cache_gib * GiB)
        return out
    requested, flag = config.kv_cache_gib, "--kv-cache-gib"
    if requested is None:
        requested = env_gib
        if requested is not None:
            flag = KV_CACHE_SPACE_ENV
        elif config.gpu_memory_utilization is not None:
            return {"gpu_memory_utilization": config.gpu_memory_utilization}
    assert host is not None, "the CPU backend's KV cache is sized for a host"
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
