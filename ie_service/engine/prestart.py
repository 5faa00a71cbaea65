"""What ``serve`` runs before vLLM is imported: :func:`preflight` checks the compiler, finds
the model (the embedded one converted once if needed) and checks its weight files, reads the
backend and host, then decides the start (:func:`~ie_service.engine.start_plan.plan_start`). A
model, memory or parallel layout that cannot start is refused in a second, naming the flag to
change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from ..models.embedded import resolve_embedded
from ..models.folder import check_weight_files
from .backend import is_cpu_backend
from .compiler_check import compiler_environment
from .config import EngineConfig
from .host import HostShape, read_host
from .start_plan import StartPlan, plan_start

log = logging.getLogger(__name__)


def preflight(config: EngineConfig, headless: bool = False, *, on_cpu: bool | None = None,
              host: HostShape | None = None, environ: Mapping[str, str] | None = None) -> StartPlan:
    """The start plan, computed (and the memory and parallel layout checked) without starting
    vLLM: raises :class:`~ie_service.engine.compiler_check.NoCompiler` for compilation asked
    for without a C++ compiler, :class:`~ie_service.models.folder.BrokenModelFolder` for a
    config or weight file that is not what it claims, and what
    :func:`~ie_service.engine.start_plan.plan_start` raises.
    ``on_cpu``, ``host`` and ``environ`` default to this process's backend, host and
    environment (tests inject them)."""
    environ = os.environ if environ is None else environ
    compiler = compiler_environment(config.enforce_eager, environ)
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
    return plan_start(config, model_path, served_name, headless=headless, on_cpu=on_cpu, host=host,
                      environ=environ, compiler=compiler)
