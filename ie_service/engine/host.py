"""What this process may really use on the host: NUMA nodes, allowed CPUs and memory
nodes, the cgroup memory limit, CPU flags. No vllm import.

vLLM's CPU worker (0.32, ``vllm/v1/worker/cpu_worker.py``) puts its KV cache on the NUMA
node of the first CPU it may run on and checks the size against that node's available
memory (``MemFree + Active(file) + Inactive(file) + SReclaimable`` from
``/sys/devices/system/node/nodeN/meminfo``), clamped by the cgroup limit. A fraction of
*host* memory (the old default) can therefore be larger than one node of a multi-node host
or than a container's limit. :func:`plan_kv_cache` picks an explicit size instead
(``kv_cache_memory_bytes``) that fits where the worker will really allocate, and refuses
before the engine starts when even that does not fit.

Every file is read under a ``root`` (default ``/``) so tests can fake any host shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserInputError
from ..models.footprint import ModelFootprint

GiB = 1024**3
MiB = 1024**2

DEFAULT_KV_CACHE_GIB = 1.0
# What the engine-core and worker processes need besides weights and KV cache (torch,
# vLLM, activations), counted only when choosing the default size.
RUNTIME_RESERVE_BYTES = 1 * GiB
KV_ALIGN_BYTES = 64 * MiB  # defaults are rounded down to this
CGROUP_V1_UNLIMITED = 1 << 62

# Flags worth printing next to a benchmark (what vLLM's CPU kernels dispatch on).
INTERESTING_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16",
                     "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


class KVCacheDoesNotFit(UserInputError, ValueError):
    """The KV cache (given or default) cannot fit in the memory the engine may use."""


@dataclass(frozen=True)
class NumaNode:
    id: int
    total: int  # bytes
    available: int  # bytes, vLLM's formula (free + file cache + reclaimable slab)
    cpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class HostShape:
    """The host as this process sees it. ``nodes`` is empty when the kernel exposes no
    NUMA information; then the whole host counts as one node."""

    host_total: int
    host_available: int
    nodes: tuple[NumaNode, ...] = ()
    allowed_cpus: tuple[int, ...] = ()
    allowed_mems: tuple[int, ...] = ()
    cgroup_limit: int | None = None
    cgroup_usage: int | None = None
    cpu_flags: frozenset[str] = field(default_factory=frozenset)
    cpu_model: str = ""

    # --- CPU ---------------------------------------------------------------------------
    @property
    def native_bf16(self) -> bool:
        """AVX512-BF16 or AMX: without them bf16 matmuls are emulated (5x slower than
        float32 for the embedded model on an AVX2 machine, measured)."""
        return bool(self.cpu_flags & {"avx512_bf16", "amx_bf16"})

    @property
    def cores(self) -> int:
        return len(self.allowed_cpus) or 1

    # --- memory --------------------------------------------------------------------------
    def node_of_cpu(self, cpu: int) -> NumaNode | None:
        for node in self.nodes:
            if cpu in node.cpus:
                return node
        return None

    def memory_node(self, cpu: int | None = None) -> NumaNode | None:
        """Where vLLM's worker allocates: the node of ``cpu`` (default: the first
        allowed CPU), else the first allowed memory node, else the first node."""
        if not self.nodes:
            return None
        if cpu is None and self.allowed_cpus:
            cpu = self.allowed_cpus[0]
        node = self.node_of_cpu(cpu) if cpu is not None else None
        if node is not None:
            return node
        by_id = {n.id: n for n in self.nodes}
        for mem in self.allowed_mems:
            if mem in by_id:
                return by_id[mem]
        return self.nodes[0]

    @property
    def cgroup_headroom(self) -> int | None:
        """Bytes the cgroup still lets this process tree allocate (None: no limit)."""
        if self.cgroup_limit is None:
            return None
        return max(0, self.cgroup_limit - (self.cgroup_usage or 0))

    def available_on(self, node: NumaNode | None) -> int:
        """Available bytes on ``node`` (the host when None), clamped by the cgroup."""
        available = node.available if node is not None else self.host_available
        headroom = self.cgroup_headroom
        return available if headroom is None else min(available, headroom)

    # --- reporting -----------------------------------------------------------------------
    def describe(self) -> str:
        """A few lines for logs and benchmark reports."""
        flags = [f for f in INTERESTING_FLAGS if f in self.cpu_flags]
        lines = [
            f"cpu: {self.cpu_model or '?'}; allowed cpus {_ranges(self.allowed_cpus)} ({self.cores})",
            "cpu flags: " + (" ".join(flags) or "none of " + " ".join(INTERESTING_FLAGS)),
        ]
        if self.nodes:
            parts = [f"node{n.id} {_gib(n.available)}/{_gib(n.total)} GiB available"
                     f" (cpus {_ranges(n.cpus) or 'none'})" for n in self.nodes]
            lines.append(f"numa: {len(self.nodes)} node(s): " + "; ".join(parts)
                         + f"; allowed memory nodes {_ranges(self.allowed_mems)}")
        else:
            lines.append(f"numa: none exposed; host {_gib(self.host_available)}/"
                         f"{_gib(self.host_total)} GiB available")
        if self.cgroup_limit is not None:
            lines.append(f"cgroup memory limit: {_gib(self.cgroup_limit)} GiB "
                         f"({_gib(self.cgroup_usage or 0)} GiB used)")
        else:
            lines.append("cgroup memory limit: none")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "cpu_model": self.cpu_model,
            "allowed_cpus": list(self.allowed_cpus),
            "cpu_flags": [f for f in INTERESTING_FLAGS if f in self.cpu_flags],
            "numa_nodes": [{"id": n.id, "total_gib": round(n.total / GiB, 2),
                            "available_gib": round(n.available / GiB, 2), "cpus": list(n.cpus)}
                           for n in self.nodes],
            "allowed_mems": list(self.allowed_mems),
            "cgroup_limit_gib": None if self.cgroup_limit is None else round(self.cgroup_limit / GiB, 2),
            "host_total_gib": round(self.host_total / GiB, 2),
        }


def _gib(n: int) -> str:
    return f"{n / GiB:.2f}"


def parse_id_list(raw: str) -> tuple[int, ...]:
    """``0-2,4,7-8`` → (0, 1, 2, 4, 7, 8)."""
    out: set[int] = set()
    for part in raw.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(part))
    return tuple(sorted(out))


def _ranges(ids) -> str:
    ids = sorted(ids)
    out, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


class HostReader:
    """Reads a :class:`HostShape` from ``/proc`` and ``/sys`` under ``root``."""

    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)

    def _path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def _text(self, rel: str | Path) -> str | None:
        path = rel if isinstance(rel, Path) else self._path(rel)
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def read(self) -> HostShape:
        total, available = self._host_memory()
        status = self._status()
        flags, model = self._cpuinfo()
        limit, usage = self._cgroup()
        return HostShape(
            host_total=total,
            host_available=available,
            nodes=self._nodes(),
            allowed_cpus=status.get("Cpus_allowed_list", ()),
            allowed_mems=status.get("Mems_allowed_list", ()),
            cgroup_limit=limit,
            cgroup_usage=usage,
            cpu_flags=flags,
            cpu_model=model,
        )

    def _host_memory(self) -> tuple[int, int]:
        info = {}
        for line in (self._text("proc/meminfo") or "").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                info[key.strip()] = int(parts[0]) * 1024
        total = info.get("MemTotal", 0)
        return total, info.get("MemAvailable", info.get("MemFree", total))

    def _nodes(self) -> tuple[NumaNode, ...]:
        base = self._path("sys/devices/system/node")
        nodes = []
        if not base.is_dir():
            return ()
        for d in sorted(base.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
            meminfo = self._text(d / "meminfo")
            if meminfo is None:
                continue
            info = {}
            for line in meminfo.splitlines():
                # "Node 0 MemTotal:       97421888 kB"
                parts = line.split()
                if len(parts) >= 4 and parts[3].isdigit():
                    info[parts[2].rstrip(":")] = int(parts[3]) * 1024
            available = sum(info.get(k, 0) for k in ("MemFree", "Active(file)", "Inactive(file)",
                                                      "SReclaimable"))
            cpus = parse_id_list(self._text(d / "cpulist") or "")
            nodes.append(NumaNode(id=int(d.name[4:]), total=info.get("MemTotal", 0),
                                  available=available, cpus=cpus))
        return tuple(nodes)

    def _status(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for line in (self._text("proc/self/status") or "").splitlines():
            key, _, value = line.partition(":")
            if key in ("Cpus_allowed_list", "Mems_allowed_list"):
                try:
                    out[key] = parse_id_list(value)
                except ValueError:
                    pass
        return out

    def _cpuinfo(self) -> tuple[frozenset[str], str]:
        flags: set[str] = set()
        model = ""
        for line in (self._text("proc/cpuinfo") or "").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("flags", "Features") and not flags:
                flags = set(value.split())
            elif key == "model name" and not model:
                model = value.strip()
        return frozenset(flags), model

    # --- cgroups -----------------------------------------------------------------------
    def _cgroup(self) -> tuple[int | None, int | None]:
        """The tightest memory limit over this process's cgroup and its ancestors, with
        the usage at that level. v2 (``memory.max``) first, then v1."""
        v2_path, v1_path = None, None
        for line in (self._text("proc/self/cgroup") or "").splitlines():
            parts = line.strip().split(":", 2)
            if len(parts) != 3:
                continue
            if parts[0] == "0" and parts[1] == "":
                v2_path = parts[2]
            elif "memory" in parts[1].split(","):
                v1_path = parts[2]
        mount = self._path("sys/fs/cgroup")
        best = self._tightest(mount, v2_path or "/", "memory.max", "memory.current", None)
        if best is None:
            best = self._tightest(mount / "memory", v1_path or "/", "memory.limit_in_bytes",
                                  "memory.usage_in_bytes", CGROUP_V1_UNLIMITED)
        return best if best is not None else (None, None)

    def _tightest(self, mount: Path, cgroup: str, limit_file: str, usage_file: str,
                  unlimited_from: int | None) -> tuple[int, int | None] | None:
        """Walk from the process's cgroup folder up to the mount, keep the level with
        the least headroom. In a container the path often does not exist under the
        mount (the mount *is* the container's cgroup): the mount root still counts."""
        levels = []
        rel = Path(cgroup.strip("/")) if cgroup.strip("/") else Path()
        while True:
            levels.append(mount / rel)
            if rel == Path() or str(rel) == ".":
                break
            rel = rel.parent
        best: tuple[int, int | None] | None = None
        for folder in dict.fromkeys(levels):
            limit = _read_int(self._text(folder / limit_file))
            if limit is None or (unlimited_from is not None and limit >= unlimited_from):
                continue
            usage = _read_int(self._text(folder / usage_file))
            if best is None or limit - (usage or 0) < best[0] - (best[1] or 0):
                best = (limit, usage)
        return best


def _read_int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_host(root: str | Path = "/") -> HostShape:
    return HostReader(root).read()


@dataclass(frozen=True)
class KVCachePlan:
    kv_cache_bytes: int
    explanation: str

    @property
    def gib(self) -> float:
        return self.kv_cache_bytes / GiB


def plan_kv_cache(host: HostShape, *, requested_gib: float | None, footprint: ModelFootprint,
                  max_model_len: int, worker_cpus: list[int],
                  default_gib: float = DEFAULT_KV_CACHE_GIB, flag: str = "--kv-cache-gib") -> KVCachePlan:
    """KV cache bytes per worker for vLLM's CPU backend.

    ``worker_cpus``: the first CPU of each worker on this host (data-parallel replicas ×
    tensor-parallel shards, :func:`~ie_service.engine.parallel.local_cpu_groups`).
    ``requested_gib`` (the user's choice) is refused only when it certainly cannot fit:
    more than what is available on a worker's NUMA node (cgroup-clamped) once the weights
    are loaded, or less than one ``max_model_len`` sequence needs. The default is
    ``default_gib`` (raised to one full sequence for big models), lowered to what fits
    after the weights and a runtime reserve; when even one sequence does not fit, a
    :class:`KVCacheDoesNotFit` names ``flag``.
    """
    n_workers = len(worker_cpus)
    min_kv = footprint.kv_bytes_per_token * max_model_len
    weights = footprint.weights_bytes
    # workers per memory node (each allocates its own cache and weight shard there)
    per_node: dict[int | None, int] = {}
    nodes: dict[int | None, NumaNode | None] = {}
    for cpu in worker_cpus:
        node = host.memory_node(cpu)
        key = node.id if node is not None else None
        per_node[key] = per_node.get(key, 0) + 1
        nodes[key] = node

    def room(reserve: int) -> tuple[int, str]:
        """Largest cache per worker that fits everywhere, and where it is tightest."""
        best, where = None, ""
        for key, workers in per_node.items():
            node = nodes[key]
            avail = node.available if node is not None else host.host_available
            fit = (avail - reserve - workers * weights) // workers
            label = (f"NUMA node {key} ({_gib(avail)} GiB available of {_gib(node.total)})"
                     if node is not None else f"the host ({_gib(avail)} GiB available)")
            if best is None or fit < best:
                best, where = fit, label
        headroom = host.cgroup_headroom
        if headroom is not None:
            fit = (headroom - reserve - n_workers * weights) // n_workers
            if fit < best:
                best = fit
                where = (f"the cgroup memory limit ({_gib(host.cgroup_limit or 0)} GiB, "
                         f"{_gib(headroom)} GiB free)")
        return int(best), where

    def need() -> str:
        parts = []
        if weights:
            parts.append(f"the weights take about {_gib(weights)} GiB per worker")
        if min_kv:
            parts.append(f"one {max_model_len}-token sequence needs {_gib(min_kv)} GiB of KV cache")
        return "; ".join(parts)

    if requested_gib is not None:
        kv = int(requested_gib * GiB)
        fit, where = room(reserve=0)
        if kv > fit:
            raise KVCacheDoesNotFit(
                f"{flag} {requested_gib:g} does not fit: {where} leaves at most "
                f"{_gib(max(fit, 0))} GiB per worker for the KV cache ({need() or 'weights unknown'}). "
                f"Lower {flag}, --max-model-len or --tensor-parallel-size, or free memory.")
        if kv < min_kv:
            raise KVCacheDoesNotFit(
                f"{flag} {requested_gib:g} is too small: {need()}. "
                f"Raise {flag} to at least {math.ceil(min_kv / GiB * 100) / 100:g} or lower --max-model-len.")
        return KVCachePlan(kv, f"KV cache {requested_gib:g} GiB per worker ({flag})")

    fit, where = room(reserve=RUNTIME_RESERVE_BYTES)
    want = max(int(default_gib * GiB), min_kv)
    kv = min(want, fit)
    if kv >= KV_ALIGN_BYTES:
        kv = max(kv // KV_ALIGN_BYTES * KV_ALIGN_BYTES, min(min_kv, kv))
    if kv <= 0 or kv < min_kv:
        raise KVCacheDoesNotFit(
            f"not enough memory for the KV cache: {where} leaves "
            f"{_gib(max(fit, 0))} GiB per worker after the weights and a "
            f"{_gib(RUNTIME_RESERVE_BYTES)} GiB runtime reserve ({need() or 'weights unknown'}). "
            f"Pass {flag} SIZE to choose the size yourself, lower --max-model-len, "
            "or run where more memory is free.")
    return KVCachePlan(kv, f"KV cache {kv / GiB:.2f} GiB per worker (default; bounded by {where})")
