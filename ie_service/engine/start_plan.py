"""The start plan: everything an engine start decides, decided once, before vLLM is imported.

:func:`~ie_service.engine.prestart.preflight` checks what comes before (the compiler, the
model's location, the host) and calls :func:`plan_start`, which makes each decision once, in
order, calling each deciding module once, and logs it; :meth:`Engine.start
<ie_service.engine.vllm_engine.Engine.start>` applies the :class:`StartPlan` and decides
nothing, and every restart after an engine crash applies the same plan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import UserInputError
from ..models.adapters import RuntimeAdapter, lora_engine_kwargs, parse_lora
from ..models.inspection import ModelInspection, inspect_for_start
from ..models.tokenizer_choice import TokenizerChoice, choose_tokenizer
from .backend import block_size_choice
from .config import EngineConfig
from .engine_args import vllm_kwargs
from .host import HostShape, read_host
from .kv_cache import env_kv_cache_gib, memory_kwargs
from .parallel import check_parallel, cpu_layout
from .process_env import process_environment
from .quantization_methods import check_quantization

log = logging.getLogger(__name__)


class ModelRefused(UserInputError, ValueError):
    """A model the engine cannot serve as it is; the message names the fix."""


@dataclass(frozen=True)
class StartPlan:
    """One engine start, decided: what :meth:`Engine.start` builds and the environment its
    processes start with. The prompt format is bound in the engine (``inspection`` carries
    what the folder says; ``auto`` without a folder needs the loaded tokenizer)."""

    config: EngineConfig
    model_path: str  # the folder (or hub id) vLLM loads; the embedded model converted if needed
    served_name: str
    headless: bool  # a follower node of a multi-node engine (serve --headless)
    on_cpu: bool  # vLLM's CPU backend (backend.is_cpu_backend)
    host: HostShape | None  # read on the CPU backend only
    inspection: ModelInspection | None  # None: not a local folder (a hub id)
    tokenizer: TokenizerChoice
    block_size: int | None  # None: vLLM's default for the device
    block_size_reason: str
    adapters: tuple[RuntimeAdapter, ...]  # serve --lora, read and checked
    engine_kwargs: Mapping[str, Any]  # AsyncEngineArgs(**...)
    environment: Mapping[str, str | None]  # the engine processes' environment changes (None: unset)


def plan_start(config: EngineConfig, model_path: str, served_name: str, *, headless: bool, on_cpu: bool,
               host: HostShape | None, environ: Mapping[str, str],
               compiler: Mapping[str, str] | None = None) -> StartPlan:
    """The plan for the model at ``model_path``, each decision made once, in order, and logged:
    the KV block (:func:`~ie_service.engine.backend.block_size_choice`), the inspection and the
    dtype (:func:`~ie_service.models.inspection.inspect_for_start`), the tokenizer, the
    quantization method, the parallel plan and CPU layout, the adapters, the KV cache size
    (:func:`~ie_service.engine.kv_cache.memory_kwargs`), then vLLM's arguments assembled
    (:func:`~ie_service.engine.engine_args.vllm_kwargs`) and the processes' environment
    (``compiler``'s changes first). Raises
    :class:`~ie_service.engine.backend.BlockSizeRefused`,
    :class:`~ie_service.models.folder.BrokenModelFolder`,
    :class:`~ie_service.models.tokenizer_choice.TokenizerModeError`,
    :class:`~ie_service.engine.quantization_methods.UnknownQuantization`,
    :class:`ModelRefused` for a checkpoint vLLM refuses (naming the fix),
    :class:`~ie_service.engine.parallel.ParallelismError` naming the parallel flag to change,
    :class:`~ie_service.engine.host.KVCacheDoesNotFit` naming ``--kv-cache-gib``."""
    block_size, block_reason = block_size_choice(config, on_cpu=on_cpu)
    inspection, dtype = inspect_for_start(model_path, dtype=config.dtype, on_cpu=on_cpu, host=host,
                                          served_name=config.served_model_name,
                                          tensor_parallel_size=config.tensor_parallel_size)
    if inspection is not None:
        log.info("%s", inspection.describe())
        for warning in inspection.warnings:
            log.warning("%s", warning)
    tokenizer = choose_tokenizer(config.tokenizer or model_path, config.tokenizer_mode)
    check_quantization(config.quantization)
    if inspection is not None and inspection.refusal:
        raise ModelRefused(inspection.refusal)
    quantization = inspection.quantization if inspection is not None else None
    parallel = check_parallel(config, model_path, on_cpu=on_cpu, host=host, headless=headless)
    layout = cpu_layout(parallel, host)
    adapters = tuple(parse_lora(config.lora))  # serve --lora: run-time adapters
    lora = lora_engine_kwargs(adapters)
    env_gib = env_kv_cache_gib(environ)
    memory = memory_kwargs(config, model_path, dtype, layout.groups, on_cpu=on_cpu, host=host, env_gib=env_gib,
                           quantized=quantization is not None)
    kwargs = vllm_kwargs(config, model_path, dtype=dtype, block_size=block_size, quantization=quantization,
                         lora=lora, memory=memory, tokenizer=tokenizer)
    log.info("tokenizer: %s (%s)", tokenizer.mode, tokenizer.reason)
    log.info("KV cache block: %s (%s)", f"{block_size} tokens" if block_size else "vLLM's default", block_reason)
    environment: dict[str, str | None] = dict(compiler or {})
    environment.update(process_environment(config, parallel, host, layout.binding, environ, env_gib))
    return StartPlan(config=config, model_path=model_path, served_name=served_name, headless=headless,
                     on_cpu=on_cpu, host=host, inspection=inspection, tokenizer=tokenizer,
                     block_size=block_size, block_size_reason=block_reason, adapters=adapters, engine_kwargs=MappingProxyType(kwargs),
                     environment=MappingProxyType(environment))


def engine_kwargs(config: EngineConfig, model_path: str, *, on_cpu: bool, host: HostShape | None = None,
                  environ: Mapping[str, str] | None = None, headless: bool = False) -> dict[str, Any]:
    """Everything :class:`AsyncEngineArgs` (or ``vllm.LLM``) is built with for ``model_path``,
    as :func:`plan_start` decides it (tests and benchmarks: no compiler check, embedded model
    or weight-file check). ``host`` and ``environ`` default to this host's and this process's;
    raises as :func:`plan_start`."""
    if on_cpu and host is None:
        host = read_host()
    environ = os.environ if environ is None else environ
    plan = plan_start(config, model_path, config.served_model_name or model_path, headless=headless,
                      on_cpu=on_cpu, host=host, environ=environ)
    return dict(plan.engine_kwargs)
