"""The CPU stack vLLM's CPU guide asks for: Intel OpenMP and tcmalloc preloaded into the
engine processes.

vLLM's CPU engine core is a freshly spawned Python process that inherits ``os.environ``,
so setting ``LD_PRELOAD`` in the serving process before the engine starts is enough (the
dynamic loader reads it at the child's exec; checked in ``/proc/<pid>/maps`` of the engine
core, see ``tests/test_cpu_runtime_real.py``). Without it vLLM preloads torch's GNU OpenMP
(``libgomp``) itself. Measured on 2 cores (issue 21): Intel OpenMP alone 1.44× the
constrained extraction throughput.

``IE_SERVICE_PRELOAD=0`` turns it off; libraries already in ``LD_PRELOAD`` are kept. One
OpenMP runtime per process: when ``LD_PRELOAD`` already holds one (GNU ``libgomp``, Intel
``libiomp``, LLVM ``libomp``), Intel OpenMP is not added (vLLM's CPU executor refuses both at
once: ``assert not (use_iomp and use_gomp)``, and the engine dies at start).
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

PRELOAD_ENV = "IE_SERVICE_PRELOAD"
# tcmalloc: Debian's libtcmalloc-minimal4 first, then one a wheel ships (vllm/libs in some builds)
TCMALLOC_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "{site}/vllm/libs/libtcmalloc_minimal*.so*",
    "{site}/*.libs/libtcmalloc_minimal*.so*",
)


def _site_packages() -> list[str]:
    return [p for p in sys.path if p.endswith("site-packages")]


def find_iomp() -> str | None:
    """The Intel OpenMP runtime of the ``intel-openmp`` wheel (``<venv>/lib/libiomp5.so``)."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = Path(prefix) / "lib" / "libiomp5.so"
        if path.is_file():
            return str(path)
    return None


def find_tcmalloc() -> str | None:
    for pattern in TCMALLOC_GLOBS:
        for site in _site_packages() or [""]:
            hits = sorted(glob.glob(pattern.format(site=site)))
            if hits:
                return hits[0]
    return None


OPENMP_RUNTIMES = ("libgomp", "libiomp", "libomp")  # the substrings vLLM's OMPProcessManager looks for


def _is_openmp(path: str) -> bool:
    return any(name in os.path.basename(path) for name in OPENMP_RUNTIMES)


def preload_libraries() -> list[str]:
    """The libraries to preload that exist here: tcmalloc first (the allocator), then
    Intel OpenMP."""
    return [p for p in (find_tcmalloc(), find_iomp()) if p]


def apply_preload(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Put the CPU libraries into ``LD_PRELOAD`` of ``environ`` (the engine processes'
    environment, default ``os.environ``) unless ``IE_SERVICE_PRELOAD=0``; logs what it did.
    Returns the libraries added."""
    environ = os.environ if environ is None else environ
    if environ.get(PRELOAD_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        log.info("CPU runtime: %s=0, engine runs without preloaded Intel OpenMP / tcmalloc", PRELOAD_ENV)
        return []
    current = [p for p in environ.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p]
    names = {os.path.basename(p).split(".so")[0] for p in current}
    has_openmp = [p for p in current if _is_openmp(p)]
    added = [p for p in preload_libraries()
             if os.path.basename(p).split(".so")[0] not in names and not (has_openmp and _is_openmp(p))]
    if has_openmp and find_iomp() and not any("libiomp" in p for p in has_openmp):
        log.warning("CPU runtime: LD_PRELOAD already holds the OpenMP runtime %s; Intel OpenMP is "
                    "not added (one runtime per process; Intel OpenMP measured 1.44x faster here: "
                    "unset LD_PRELOAD to get it)", ":".join(has_openmp))
    if not added:
        log.info("CPU runtime: LD_PRELOAD=%s (nothing to add; Intel OpenMP %s, tcmalloc %s)",
                 ":".join(current) or "(empty)", find_iomp() or "not found", find_tcmalloc() or "not found")
        return []
    environ["LD_PRELOAD"] = ":".join(added + current)
    missing = [name for name, found in (("tcmalloc", find_tcmalloc()), ("Intel OpenMP", find_iomp())) if not found]
    log.info("CPU runtime: engine processes start with LD_PRELOAD=%s%s (%s=0 turns this off)",
             environ["LD_PRELOAD"], f"; not found: {', '.join(missing)}" if missing else "", PRELOAD_ENV)
    return added
