"""The start plan: everything an engine start decides, decided once, before vLLM is imported.

``serve`` runs :func:`preflight` first (a model, memory or parallel layout that cannot start is
refused in a second, naming the flag to change); :meth:`Engine.start
<ie_service.engine.vllm_engine.Engine.start>` applies the :class:`StartPlan` it returns and
decides nothing, and every restart after an engine crash applies the same plan. The model is
inspected, the tokenizer chosen and the compiler checked once per plan; the decisions are
logged here, once each.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..models.embedded import resolve_embedded
from ..models.folder import check_weight_files
from ..models.inspection import ModelInspection
from ..models.tokenizer_choice import TokenizerChoice, choose_tokenizer
from .compiler_check import compiler_environment
from .config import EngineConfig
from .cpu_runtime import apply_preload
from .engine_args import (KV_CACHE_SPACE_ENV, block_size_choice, env_kv_cache_gib, inspect_for, is_cpu_backend,
                          vllm_kwargs)
from .host import HostShape, read_host
from .parallel import ParallelPlan, is_ip_address, thread_binding

log = logging.getLogger(__name__)

RESERVED_CPU_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
# vLLM keeps one CPU per local worker for the engine core process and gives the model the
# rest. With one worker on at most this many CPUs that core is a large share of the compute:
# on 2 CPUs the model then runs on one. Measured on 2 cores (benchmarks/bench_cpu_layout.py,
# grounded NER, 48 WNUT-17 sentences): every CPU for the model is 1.47x the sentences/s at
# 16 in flight and 1.57x at 1, the same greedy outputs 48/48. Bigger hosts keep vLLM's default
# (one core of many costs little, and the model's threads would share it with the engine core).
SMALL_HOST_CPUS = 4


@dataclass(frozen=True)
class StartPlan:
    """One engine start, decided: what :meth:`Engine.start` builds and the environment its
    processes start with. The prompt format is bound in the engine (``inspection`` carries
    what the folder says; ``auto`` without a folder needs the loaded tokenizer)."""

    config: EngineConfig
    model_path: str  # the folder (or hub id) vLLM loads; the embedded model converted if needed
    served_name: str
    headless: bool  # a follower node of a multi-node engine (serve --headless)
    on_cpu: bool  # vLLM's CPU backend (engine_args.is_cpu_backend)
    host: HostShape | None  # read on the CPU backend only
    inspection: ModelInspection | None  # None: not a local folder (a hub id)
    tokenizer: TokenizerChoice
    block_size: int | None  # None: vLLM's default for the device
    block_size_reason: str
    engine_kwargs: Mapping[str, Any]  # AsyncEngineArgs(**...)
    environment: Mapping[str, str | None]  # the engine processes' environment changes (None: unset)

    def engine_arguments(self) -> dict[str, Any]:
        """A fresh copy of :attr:`engine_kwargs` for one start (vLLM may keep or change what
        it is given; a restart starts from the plan as made)."""
        return copy.deepcopy(dict(self.engine_kwargs))

    def apply_environment(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Set :attr:`environment` in ``environ`` (default ``os.environ``, which vLLM's spawned
        processes inherit); the same every start."""
        environ = os.environ if environ is None else environ
        for key, value in self.environment.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value


def preflight(config: EngineConfig, headless: bool = False, *, on_cpu: bool | None = None,
              host: HostShape | None = None, environ: Mapping[str, str] | None = None) -> StartPlan:
    """The start plan, computed (and the memory and parallel layout checked) without starting
    vLLM: raises :class:`~ie_service.engine.compiler_check.NoCompiler` for compilation asked
    for without a C++ compiler, :class:`~ie_service.models.folder.BrokenModelFolder` for a
    config or weight file that is not what it claims,
    :class:`~ie_service.engine.engine_args.BlockSizeRefused`,
    :class:`~ie_service.models.tokenizer_choice.TokenizerModeError`,
    :class:`~ie_service.engine.engine_args.UnknownQuantization`,
    :class:`~ie_service.engine.engine_args.ModelRefused`,
    :class:`~ie_service.engine.parallel.ParallelismError` naming the parallel flag to change,
    :class:`~ie_service.engine.host.KVCacheDoesNotFit` naming ``--kv-cache-gib``.
    ``on_cpu``, ``host`` and ``environ`` default to this process's backend, host and
    environment (tests inject them)."""
    environ = os.environ if environ is None else environ
    environment: dict[str, str | None] = dict(compiler_environment(config.enforce_eager, environ))
    embedded = resolve_embedded(config.model)  # the embedded model is converted once if needed
    model_path, served_name = ((str(embedded[0]), config.served_model_name or embedded[1]) if embedded is not None
                               else (config.model, config.served_model_name or config.model))
    if Path(model_path).is_dir():
        check_weight_files(model_path)
    on_cpu = is_cpu_backend(environ) if on_cpu is None else on_cpu
    if on_cpu and host is None:
        host = read_host()
    if host is not None:
        log.info("host:\n%s", host.describe())
    block = block_size_choice(config, on_cpu=on_cpu)
    inspection = inspect_for(config, model_path, on_cpu=on_cpu, host=host)
    if inspection is not None:
        log.info("%s", inspection.describe())
        for warning in inspection.warnings:
            log.warning("%s", warning)
    tokenizer = choose_tokenizer(config.tokenizer or model_path, config.tokenizer_mode)
    kwargs = vllm_kwargs(config, model_path, on_cpu=on_cpu, host=host, environ=environ, headless=headless,
                         inspection=inspection, block=block, tokenizer=tokenizer)
    log.info("tokenizer: %s (%s)", tokenizer.mode, tokenizer.reason)
    log.info("KV cache block: %s (%s)", f"{block[0]} tokens" if block[0] else "vLLM's default", block[1])
    environment.update(process_environment(config, host, environ))
    return StartPlan(config=config, model_path=model_path, served_name=served_name, headless=headless,
                     on_cpu=on_cpu, host=host, inspection=inspection, tokenizer=tokenizer,
                     block_size=block[0], block_size_reason=block[1], engine_kwargs=MappingProxyType(kwargs),
                     environment=MappingProxyType(environment))


def process_environment(config: EngineConfig, host: HostShape | None,
                        environ: Mapping[str, str]) -> dict[str, str | None]:
    """The engine processes' environment changes besides the compiler's (None = unset), logged
    once: the network's (:func:`network_environment`); on the CPU backend (``host`` given) the
    CPU runtime in ``LD_PRELOAD`` (:func:`~ie_service.engine.cpu_runtime.apply_preload`) and the
    CPU layout (:func:`cpu_environment`)."""
    changes: dict[str, str | None] = dict(network_environment(config, environ))
    if host is None:
        return changes
    preloaded = dict(environ)
    if apply_preload(preloaded):  # Intel OpenMP + tcmalloc in the engine core's LD_PRELOAD (issue 21)
        changes["LD_PRELOAD"] = preloaded["LD_PRELOAD"]
    layout = cpu_environment(config, host, environ)
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


def cpu_environment(config: EngineConfig, host: HostShape,
                    environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Environment changes for the CPU engine's processes (None = unset): a group of CPUs
    per local worker (:func:`~ie_service.engine.parallel.thread_binding`; a binding the user
    set is kept); for one worker on a small host, every CPU for the model
    (``VLLM_CPU_NUM_OF_RESERVED_CPU=0``, see :data:`SMALL_HOST_CPUS`); and no
    ``VLLM_CPU_KVCACHE_SPACE`` when ``--kv-cache-gib`` is given (vLLM would let the variable
    override the flag)."""
    environ = os.environ if environ is None else environ
    changes: dict[str, str | None] = {}
    binding = thread_binding(ParallelPlan.of(config), host)
    if binding is not None and "VLLM_CPU_OMP_THREADS_BIND" not in environ:
        changes["VLLM_CPU_OMP_THREADS_BIND"] = binding
    if (binding is None and RESERVED_CPU_ENV not in environ and "VLLM_CPU_OMP_THREADS_BIND" not in environ
            and worker_cpus(host) <= SMALL_HOST_CPUS):
        changes[RESERVED_CPU_ENV] = "0"
    if config.kv_cache_gib is not None and env_kv_cache_gib(environ) is not None:
        changes[KV_CACHE_SPACE_ENV] = None
    return changes


def network_environment(config: EngineConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``VLLM_HOST_IP`` when every node runs on this host: vLLM otherwise guesses the address
    its processes connect to from the default route, which is not loopback."""
    environ = os.environ if environ is None else environ
    if "VLLM_HOST_IP" in environ or not ParallelPlan.of(config).all_nodes_on_this_host:
        return {}
    return {"VLLM_HOST_IP": config.master_addr if is_ip_address(config.master_addr) else "127.0.0.1"}
