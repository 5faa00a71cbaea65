"""The engine processes' environment: what a start sets (or unsets) for vLLM's processes,
from the parallel plan and CPU layout decided before it, logged once."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from .config import EngineConfig
from .cpu_runtime import apply_preload
from .host import HostShape
from .kv_cache import KV_CACHE_SPACE_ENV
from .parallel import ParallelPlan

log = logging.getLogger(__name__)

RESERVED_CPU_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
# vLLM keeps one CPU per local worker for the engine core process and gives the model the
# rest. With one worker on at most this many CPUs that core is a large share of the compute:
# on 2 CPUs the model then runs on one. Measured on 2 cores (benchmarks/bench_cpu_layout.py,
# grounded NER, 48 WNUT-17 sentences): every CPU for the model is 1.47x the sentences/s at
# 16 in flight and 1.57x at 1, the same greedy outputs 48/48. Bigger hosts keep vLLM's default
# (one core of many costs little, and the model's threads would share it with the engine core).
SMALL_HOST_CPUS = 4


def process_environment(config: EngineConfig, plan: ParallelPlan, host: HostShape | None,
                        binding: str | None, environ: Mapping[str, str],
                        env_gib: float | None) -> dict[str, str | None]:
    """The engine processes' environment changes besides the compiler's (None = unset), logged
    once: the network's (:func:`network_environment`); on the CPU backend (``host`` given) the
    CPU runtime in ``LD_PRELOAD`` (:func:`~ie_service.engine.cpu_runtime.apply_preload`) and the
    CPU layout (:func:`cpu_environment`)."""
    changes: dict[str, str | None] = dict(network_environment(plan, environ))
    if host is None:
        return changes
    preloaded = dict(environ)
    if apply_preload(preloaded):  # Intel OpenMP + tcmalloc in the engine core's LD_PRELOAD (issue 21)
        changes["LD_PRELOAD"] = preloaded["LD_PRELOAD"]
    layout = cpu_environment(config, host, binding, environ, env_gib)
    for key, value in layout.items():
        if value is None:
            log.warning("%s is ignored: --kv-cache-gib is given", key)
    if RESERVED_CPU_ENV in layout:
        log.info("CPU layout: %d CPUs for one worker: all of them run the model (%s=0; vLLM "
                 "would keep one for its engine core; set the variable to choose)",
                 worker_cpus(host), RESERVED_CPU_ENV)
    return changes | layout


def worker_cpus(host: HostShape) -> int:
    """The CPUs vLLM's own binding gives one worker: those of its memory node that this
    process may use (all allowed CPUs without NUMA information)."""
    node = host.memory_node()
    allowed = set(host.allowed_cpus)
    if node is not None and node.cpus:
        return len([c for c in node.cpus if not allowed or c in allowed]) or host.cores
    return host.cores


def cpu_environment(config: EngineConfig, host: HostShape, binding: str | None,
                    environ: Mapping[str, str] | None = None,
                    env_gib: float | None = None) -> dict[str, str | None]:
    """Environment changes for the CPU engine's processes (None = unset): the thread
    ``binding`` of the local workers (:func:`~ie_service.engine.parallel.cpu_layout`; a binding
    the user set is kept); for one worker on a small host, every CPU for the model
    (``VLLM_CPU_NUM_OF_RESERVED_CPU=0``, see :data:`SMALL_HOST_CPUS`); and no
    ``VLLM_CPU_KVCACHE_SPACE`` (``env_gib``, its value) when ``--kv-cache-gib`` is given (vLLM
    would let the variable override the flag)."""
    environ = os.environ if environ is None else environ
    changes: dict[str, str | None] = {}
    if binding is not None and "VLLM_CPU_OMP_THREADS_BIND" not in environ:
        changes["VLLM_CPU_OMP_THREADS_BIND"] = binding
    if (binding is None and RESERVED_CPU_ENV not in environ and "VLLM_CPU_OMP_THREADS_BIND" not in environ
            and worker_cpus(host) <= SMALL_HOST_CPUS):
        changes[RESERVED_CPU_ENV] = "0"
    if config.kv_cache_gib is not None and env_gib is not None:
        changes[KV_CACHE_SPACE_ENV] = None
    return changes


def network_environment(plan: ParallelPlan, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``VLLM_HOST_IP`` when every node runs on this host: vLLM otherwise guesses the address
    its processes connect to from the default route, which is not loopback."""
    environ = os.environ if environ is None else environ
    if "VLLM_HOST_IP" in environ or not plan.all_nodes_on_this_host:
        return {}
    return {"VLLM_HOST_IP": plan.local_address}
