"""A C++ compiler for torch.compile, or the engine without torch.compile.

Even with the model running eagerly (``enforce_eager``, the default), vLLM compiles a few
sampler helpers with ``torch.compile``: ranking the sampled token for logprobs
(``vllm/v1/sample/ops/logprobs.py``) and top-k/top-p. Inductor builds them with a C++
compiler, found as ``$CXX`` or ``g++`` (``clang++`` on macOS). Where there is none (the slim
CPU image, a bare laptop) the engine dies at the first request that asks for logprobs: every
extraction, since each record carries a confidence (seen in the CPU image, 2026-12-03:
``InvalidCxxCompiler`` in ``sample_tokens``).

So, when no compiler answers ``--version`` and the model runs eagerly, the engine processes
start with ``TORCHDYNAMO_DISABLE=1``: those helpers run as plain PyTorch (the same numbers,
no build). When compilation was asked for (``--no-enforce-eager``), a missing compiler is an
error at start, before the engine loads anything.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping

from ..errors import UserInputError

log = logging.getLogger(__name__)

DISABLE_ENV = "TORCHDYNAMO_DISABLE"


class NoCompiler(UserInputError, RuntimeError):
    """Compilation was asked for and no C++ compiler is installed."""


def cxx_compiler(environ: Mapping[str, str] | None = None) -> str | None:
    """The C++ compiler Inductor would use (``$CXX``, else ``g++``; ``clang++`` on macOS)
    when it answers ``--version``; None when it is missing or broken."""
    environ = os.environ if environ is None else environ
    name = _wanted(environ)
    try:
        subprocess.run([name, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return name


def check_compiler(enforce_eager: bool, environ: Mapping[str, str] | None = None) -> str | None:
    """The compiler found (None: none). Raises :class:`NoCompiler` when ``enforce_eager`` is off
    and there is none (``serve``'s preflight runs this before vLLM is imported)."""
    environ = os.environ if environ is None else environ
    found = cxx_compiler(environ)
    if found is None and not enforce_eager:
        raise NoCompiler(f"--no-enforce-eager compiles the model with torch.compile, which needs a C++ "
                         f"compiler: {_wanted(environ)} was not found (install g++, set CXX, or drop the flag)")
    return found


def _wanted(environ: Mapping[str, str]) -> str:
    return environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")


def compiler_environment(enforce_eager: bool, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The engine processes' environment change for the compiler found (the one check per
    start): ``TORCHDYNAMO_DISABLE=1`` when there is none and ``environ`` (default
    ``os.environ``) does not set it already (a value the user set is kept), else nothing.
    Raises :class:`NoCompiler` as :func:`check_compiler` does."""
    environ = os.environ if environ is None else environ
    if check_compiler(enforce_eager, environ) is not None or DISABLE_ENV in environ:
        return {}
    log.info("no C++ compiler (%s not found): vLLM's torch.compile'd sampler helpers run as plain "
             "PyTorch (%s=1 for the engine processes; install g++ to compile them)", _wanted(environ), DISABLE_ENV)
    return {DISABLE_ENV: "1"}
