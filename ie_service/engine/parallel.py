"""How one engine spreads over processes and machines, using vLLM's own distribution.

- **Data parallel** (``--data-parallel-size N``): N engine replicas inside one service; vLLM's
  front end spreads the requests over them (it counts each replica's queue).
- **Tensor parallel across nodes** (``--nnodes``, ``--node-rank``, ``--master-addr``,
  ``--master-port``, vLLM's multiprocessing backend): node rank 0 serves HTTP, the others run
  ``ie-service serve --headless`` (engine workers only).

Everything here is pure (no vllm import): :func:`check_parallel` refuses combinations that
cannot start, with the flag to change, before any process is spawned; :func:`cpu_layout`
gives each worker of this host its CPUs and computes ``VLLM_CPU_OMP_THREADS_BIND``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError
from .config import EngineConfig
from .host import HostShape, _ranges


class ParallelismError(UserInputError, ValueError):
    """A parallel layout that cannot start here (the message names the flag to change)."""


@dataclass(frozen=True)
class ParallelPlan:
    """Ranks are vLLM's: ``[data parallel, tensor parallel]``, each node holding a
    contiguous slice of ``world_size // nnodes`` workers."""

    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    nnodes: int = 1
    node_rank: int = 0
    all_nodes_on_this_host: bool = True  # the master address is a loopback address
    local_address: str = "127.0.0.1"  # what every node's processes connect to when all run here

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size

    @property
    def local_workers(self) -> int:
        """Worker processes this node runs."""
        return self.world_size // self.nnodes

    @property
    def first_local_rank(self) -> int:
        return self.node_rank * self.local_workers

    @property
    def workers_on_this_host(self) -> int:
        """Workers competing for this host's CPUs (every node's, when all run here)."""
        return self.world_size if self.all_nodes_on_this_host else self.local_workers

    @classmethod
    def of(cls, config: EngineConfig) -> "ParallelPlan":
        return cls(config.tensor_parallel_size, config.data_parallel_size, config.nnodes,
                   config.node_rank, is_loopback(config.master_addr),
                   config.master_addr if is_ip_address(config.master_addr) else "127.0.0.1")


def is_ip_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def is_loopback(address: str) -> bool:
    """``127.0.0.0/8``, ``::1`` or a name that resolves only there (``localhost``)."""
    if is_ip_address(address):
        return ipaddress.ip_address(address).is_loopback
    try:
        infos = socket.getaddrinfo(address, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def attention_heads(model_path: str | Path) -> tuple[int | None, int | None]:
    """(attention heads, key/value heads) from the model's ``config.json``; None if unknown."""
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    cfg = cfg.get("text_config", cfg)
    heads = cfg.get("num_attention_heads")
    kv = cfg.get("num_key_value_heads", heads)
    return (heads if isinstance(heads, int) else None), (kv if isinstance(kv, int) else None)


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def check_parallel(config: EngineConfig, model_path: str | Path | None, *, on_cpu: bool,
                   host: HostShape | None = None, headless: bool = False) -> ParallelPlan:
    """The plan for ``config``, or :class:`ParallelismError` saying which flag to change."""
    plan = ParallelPlan.of(config)
    tp, dp, nnodes = plan.tensor_parallel_size, plan.data_parallel_size, plan.nnodes
    if config.node_rank >= nnodes:
        raise ParallelismError(f"--node-rank {config.node_rank} must be below --nnodes {nnodes} "
                               f"(ranks are 0..{nnodes - 1})")
    if nnodes > 1 and dp > 1:
        raise ParallelismError(
            "--data-parallel-size with --nnodes is not supported by ie-service serve: use --nnodes "
            "for a model too big for one node (tensor parallel), and --data-parallel-size, or one "
            "service per node behind a load balancer, for more throughput (README: Scaling out)")
    if nnodes > 1 and tp % nnodes:
        raise ParallelismError(f"--tensor-parallel-size {tp} must be a multiple of --nnodes {nnodes}: "
                               "every node runs the same number of workers")
    if headless and nnodes == 1:
        raise ParallelismError("--headless runs the engine workers of a follower node: it needs "
                               "--nnodes 2 or more and --node-rank 1 or more")
    if headless and config.node_rank == 0:
        raise ParallelismError("--headless is for follower nodes (--node-rank 1 or more); node rank 0 "
                               "is the leader and serves HTTP")
    if not headless and config.node_rank > 0:
        raise ParallelismError(f"--node-rank {config.node_rank} is a follower: start it with --headless "
                               "(only node rank 0 serves HTTP)")
    heads, kv_heads = attention_heads(model_path) if model_path else (None, None)
    if tp > 1 and heads is not None and heads % tp:
        raise ParallelismError(f"--tensor-parallel-size {tp} does not divide the model's {heads} "
                               f"attention heads (possible: {_divisors(heads)})")
    if tp > 1 and kv_heads is not None and kv_heads % tp and tp % kv_heads:
        raise ParallelismError(f"--tensor-parallel-size {tp} and the model's {kv_heads} key/value heads: "
                               f"one must divide the other (possible: {_divisors(heads or kv_heads)})")
    if on_cpu and host is not None and plan.workers_on_this_host > host.cores:
        what = (f"{plan.workers_on_this_host} engine workers (--data-parallel-size {dp} × "
                f"--tensor-parallel-size {tp})")
        if plan.all_nodes_on_this_host and nnodes > 1:
            what += f", all {nnodes} nodes on this host (--master-addr {config.master_addr})"
        raise ParallelismError(f"{what} need a CPU each, but this process may use {host.cores} "
                               f"(cpus {_ranges(host.allowed_cpus) or '?'}): lower the sizes")
    return plan


def cpu_groups(host: HostShape, workers: int) -> list[tuple[int, ...]]:
    """The allowed CPUs cut into ``workers`` contiguous groups, one per worker: per NUMA node
    when the workers spread evenly over the nodes (so a worker never straddles two),
    otherwise over the whole list. Assumes ``workers <= host.cores``."""
    cpus = sorted(host.allowed_cpus) or [0]
    per_node = [sorted(c for c in n.cpus if c in set(cpus)) for n in host.nodes]
    per_node = [c for c in per_node if c]
    if len(per_node) > 1 and workers % len(per_node) == 0 and all(
            len(c) >= workers // len(per_node) for c in per_node):
        return [g for node_cpus in per_node for g in _split(node_cpus, workers // len(per_node))]
    return _split(cpus, workers)


def _split(cpus: list[int], parts: int) -> list[tuple[int, ...]]:
    size, extra = divmod(len(cpus), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(tuple(cpus[start:end]))
        start = end
    return out


def local_cpu_groups(plan: ParallelPlan, host: HostShape) -> list[tuple[int, ...]]:
    """The CPU group of each worker this node runs, in local rank order (``[DP, TP]``).
    When every node runs on this host (loopback master), node ``r`` takes the ``r``-th slice of
    the host's groups, so two "nodes" on one machine never share a CPU."""
    if plan.all_nodes_on_this_host:
        groups = cpu_groups(host, plan.world_size)
        return groups[plan.first_local_rank:plan.first_local_rank + plan.local_workers]
    return cpu_groups(host, plan.local_workers)


@dataclass(frozen=True)
class CpuLayout:
    """This node's workers on this host's CPUs, decided once per start."""

    groups: tuple[tuple[int, ...], ...]  # each local worker's CPUs, in local rank order
    binding: str | None  # VLLM_CPU_OMP_THREADS_BIND; None: one worker alone (vLLM's own binding)


def cpu_layout(plan: ParallelPlan, host: HostShape | None) -> CpuLayout:
    """The CPU group of each local worker (:func:`local_cpu_groups`) and their
    ``VLLM_CPU_OMP_THREADS_BIND`` (``0-7|8-15``; None for one worker alone on one host: vLLM's
    own binding then picks the NUMA node). Without a ``host`` (not read off the CPU backend):
    none."""
    if host is None:
        return CpuLayout((), None)
    groups = tuple(local_cpu_groups(plan, host))
    binding = None if plan.workers_on_this_host == 1 else "|".join(_ranges(g) for g in groups)
    return CpuLayout(groups, binding)


def thread_binding(plan: ParallelPlan, host: HostShape) -> str | None:
    """``VLLM_CPU_OMP_THREADS_BIND`` for this node's workers (:func:`cpu_layout`)."""
    return cpu_layout(plan, host).binding
