"""Faked host shapes for the tests that plan engine arguments without an engine: a small
/proc + /sys tree (NUMA nodes, allowed CPUs and memory nodes, cgroup v1/v2 limits, cpuinfo
flags) read by :class:`~ie_service.engine.host.HostReader`, and a sparse model folder."""

from __future__ import annotations

import json
from pathlib import Path

from ie_service.engine.host import GiB, MiB, HostReader

AVX2 = "fpu sse sse2 avx avx2 fma f16c"
AVX512_BF16 = AVX2 + " avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_bf16"
SMOL = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "bfloat16",
        "head_dim": 64, "hidden_size": 576, "num_attention_heads": 9, "num_hidden_layers": 30,
        "num_key_value_heads": 3, "vocab_size": 49152}
SMOL_KV_PER_TOKEN_BF16 = 2 * 30 * 3 * 64 * 2  # k and v, layers, kv heads, head dim, bytes


def kib(gib: float) -> int:
    return int(gib * GiB / 1024)


def fake_host(root: Path, *, nodes=((24, 20, "0-1"),), cpus="0-1", mems=None, flags=AVX512_BF16,
              host_gib=None, cgroup=None, cgroup_path="/") -> HostReader:
    """``nodes``: (total GiB, available GiB, cpulist) each; ``cgroup``: ("v2"|"v1",
    limit bytes or None, usage bytes) at ``cgroup_path`` (and an unlimited root)."""
    node_dir = root / "sys/devices/system/node"
    for i, (total, avail, cpulist) in enumerate(nodes):
        d = node_dir / f"node{i}"
        d.mkdir(parents=True)
        free = avail * 0.5
        (d / "meminfo").write_text(
            f"Node {i} MemTotal:       {kib(total)} kB\n"
            f"Node {i} MemFree:        {kib(free)} kB\n"
            f"Node {i} MemUsed:        {kib(total - free)} kB\n"
            f"Node {i} Active(file):   {kib(avail * 0.2)} kB\n"
            f"Node {i} Inactive(file): {kib(avail * 0.2)} kB\n"
            f"Node {i} SReclaimable:   {kib(avail * 0.1)} kB\n")
        (d / "cpulist").write_text(cpulist + "\n")
    total = host_gib or sum(n[0] for n in nodes)
    avail = sum(n[1] for n in nodes)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/meminfo").write_text(f"MemTotal: {kib(total)} kB\nMemFree: {kib(avail / 2)} kB\n"
                                       f"MemAvailable: {kib(avail)} kB\n")
    mems = mems if mems is not None else (f"0-{len(nodes) - 1}" if len(nodes) > 1 else "0")
    (root / "proc/self/status").write_text(f"Name:\tpython\nCpus_allowed_list:\t{cpus}\n"
                                           f"Mems_allowed_list:\t{mems}\n")
    (root / "proc/cpuinfo").write_text(f"processor\t: 0\nmodel name\t: Fake CPU\nflags\t\t: {flags}\n\n")
    cg = root / "sys/fs/cgroup"
    if cgroup is None:
        cg.mkdir(parents=True)
        (root / "proc/self/cgroup").write_text("0::/\n")
    elif cgroup[0] == "v2":
        _, limit, usage = cgroup
        leaf = cg / cgroup_path.strip("/")
        leaf.mkdir(parents=True, exist_ok=True)
        (cg / "cgroup.controllers").write_text("cpu memory\n")
        (cg / "memory.max").write_text("max\n")
        (leaf / "memory.max").write_text(f"{limit if limit is not None else 'max'}\n")
        (leaf / "memory.current").write_text(f"{usage}\n")
        (root / "proc/self/cgroup").write_text(f"0::{cgroup_path}\n")
    else:
        _, limit, usage = cgroup
        mem = cg / "memory"
        leaf = mem / cgroup_path.strip("/")
        leaf.mkdir(parents=True, exist_ok=True)
        (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1 "unlimited"
        (leaf / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (leaf / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (root / "proc/self/cgroup").write_text(f"4:memory:{cgroup_path}\n1:cpu:/\n0::/\n")
    return HostReader(root)


def fake_model(folder: Path, config: dict = SMOL, weights_bytes: int = 260 * MiB) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    with open(folder / "model.safetensors", "wb") as f:  # sparse: takes no disk
        f.truncate(weights_bytes)
    return str(folder)


def vllm_args(kwargs):
    """vLLM's own engine arguments built from ``kwargs`` (raises where vLLM refuses them)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(**kwargs)


def layout_environment(config, host, environ):
    """The CPU layout's environment a start computes for ``config`` on ``host``: the thread
    binding of its parallel plan and the legacy KV cache variable read from ``environ``."""
    from ie_service.engine.kv_cache import env_kv_cache_gib
    from ie_service.engine.parallel import ParallelPlan, thread_binding
    from ie_service.engine.process_env import cpu_environment

    return cpu_environment(config, host, thread_binding(ParallelPlan.of(config), host), environ,
                           env_kv_cache_gib(environ))
