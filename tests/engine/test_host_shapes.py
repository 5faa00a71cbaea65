"""KV cache sizing on the CPU backend against faked host shapes (issue 12, part 1).

Each test writes a small /proc + /sys tree (NUMA nodes, allowed CPUs and memory nodes,
cgroup v1/v2 limits, cpuinfo flags) and checks the engine arguments produced, without
starting an engine. ``AsyncEngineArgs(**kwargs)`` is built to show vLLM takes them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fake_hosts import (AVX2, AVX512_BF16, SMOL, SMOL_KV_PER_TOKEN_BF16, fake_host, fake_model, layout_environment,
                        vllm_args)
from ie_service.engine.kv_cache import KV_CACHE_SPACE_ENV
from ie_service.engine.prestart import preflight
from ie_service.engine.start_plan import engine_kwargs
from ie_service.engine.config import EngineConfig
from ie_service.engine.host import (
    GiB,
    MiB,
    RUNTIME_RESERVE_BYTES,
    KVCacheDoesNotFit,
)
from ie_service.models.footprint import ModelFootprint
from ie_service.models.inspection import inspect_for_start
from ie_service.errors import UserInputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def smol(tmp_path):
    return fake_model(tmp_path / "smol")


def cpu_kwargs(host, model, **config):
    kwargs = engine_kwargs(EngineConfig(**config), model, on_cpu=True, host=host.read(), environ={})
    _ = vllm_args(kwargs)
    return kwargs


# --- reading the host ------------------------------------------------------------------------


def test_reader_parses_nodes_cpus_flags_and_cgroup_v2(tmp_path):
    host = fake_host(tmp_path, nodes=((8.21, 5.76, "0-1"), (8, 7.5, ""), (8, 7.9, "")), cpus="0-1",
                     cgroup=("v2", 6 * GiB, 1 * GiB), cgroup_path="/kubepods/pod1/ctr").read()
    assert [n.id for n in host.nodes] == [0, 1, 2]
    assert host.nodes[0].cpus == (0, 1) and host.nodes[1].cpus == ()
    assert abs(host.nodes[0].available - 5.76 * GiB) < 4 * MiB
    assert host.allowed_cpus == (0, 1) and host.allowed_mems == (0, 1, 2)
    assert host.memory_node().id == 0
    assert (host.cgroup_limit, host.cgroup_usage) == (6 * GiB, 1 * GiB)
    assert host.native_bf16 and host.cpu_model == "Fake CPU"
    text = host.describe()
    assert "avx512_bf16" in text and "node2" in text and "cgroup memory limit: 6.00 GiB" in text


def test_reader_cgroup_v1_ignores_unlimited_sentinel(tmp_path):
    host = fake_host(tmp_path, cgroup=("v1", 3 * GiB, GiB // 2), cgroup_path="/docker/abc").read()
    assert host.cgroup_limit == 3 * GiB and host.cgroup_headroom == 3 * GiB - GiB // 2
    other = fake_host(tmp_path / "b", cgroup=("v1", 9223372036854771712, 0)).read()
    assert other.cgroup_limit is None


def test_reader_without_numa_uses_host_memory(tmp_path):
    reader = fake_host(tmp_path, nodes=((16, 12, "0-3"),), cpus="0-3")
    import shutil
    shutil.rmtree(tmp_path / "sys/devices")
    host = reader.read()
    assert host.nodes == () and host.memory_node() is None
    assert abs(host.available_on(None) - 12 * GiB) < 4 * MiB


# --- the host: 3 NUMA nodes, 2 cores, AVX512-BF16 ------------------------------------


def test_three_node_host_gets_explicit_kv_cache_not_a_fraction(tmp_path, smol):
    """The old default passed gpu_memory_utilization = 3 GiB / host RAM, which vLLM applies
    to node 0 and then subtracts the worker's own memory: negative on this host."""
    host = fake_host(tmp_path, nodes=((8.21, 5.76, "0-1"), (8, 7.5, ""), (8, 7.9, "")), cpus="0-1")
    kwargs = cpu_kwargs(host, smol)
    assert kwargs["kv_cache_memory_bytes"] == 1 * GiB
    assert "gpu_memory_utilization" not in kwargs
    assert kwargs["dtype"] == "bfloat16"  # native bf16: auto runs bf16


@pytest.mark.parametrize("nodes,cpus,expect_node", [
    (((16, 14, "0-1"),), "0-1", 0),
    (((16, 14, "0-1"), (4, 1.6, "2-3")), "2-3", 1),  # bound to the small node
    (((2, 1.7, "0"), (8, 7, "1"), (64, 60, "2")), "0-2", 0),  # first allowed CPU's node
])
def test_kv_cache_fits_the_node_the_worker_allocates_on(tmp_path, smol, nodes, cpus, expect_node):
    shape = fake_host(tmp_path, nodes=nodes, cpus=cpus).read()
    assert shape.memory_node().id == expect_node
    kv = engine_kwargs(EngineConfig(), smol, on_cpu=True, host=shape, environ={})["kv_cache_memory_bytes"]
    node = shape.memory_node()
    assert kv <= node.available - RUNTIME_RESERVE_BYTES - 260 * MiB
    assert kv >= SMOL_KV_PER_TOKEN_BF16 * 2048  # still one full 2048-token sequence
    assert kv % (64 * MiB) == 0 and kv <= 1 * GiB


def test_cgroup_limit_below_host_ram_bounds_the_cache(tmp_path, smol):
    host = fake_host(tmp_path, nodes=((64, 60, "0-7"),), cpus="0-7",
                     cgroup=("v2", 2 * GiB, GiB // 2), cgroup_path="/system.slice/ie.service")
    kv = cpu_kwargs(host, smol)["kv_cache_memory_bytes"]
    assert 0 < kv <= (2 * GiB - GiB // 2) - RUNTIME_RESERVE_BYTES - 260 * MiB


def test_no_room_is_a_clear_error_naming_the_flag(tmp_path, smol):
    host = fake_host(tmp_path, nodes=((64, 60, "0-7"),), cpus="0-7", cgroup=("v1", int(1.2 * GiB), 0),
                     cgroup_path="/docker/x")
    with pytest.raises(KVCacheDoesNotFit, match="--kv-cache-gib") as err:
        cpu_kwargs(host, smol)
    assert "cgroup memory limit" in str(err.value)
    assert isinstance(err.value, UserInputError)  # the CLI prints one line, exit 2


def test_explicit_size_is_used_and_refused_only_when_impossible(tmp_path, smol):
    host = fake_host(tmp_path, nodes=((4, 2.5, "0-1"), (32, 30, "2-3")), cpus="0-1")
    assert cpu_kwargs(host, smol, kv_cache_gib=2)["kv_cache_memory_bytes"] == 2 * GiB
    with pytest.raises(KVCacheDoesNotFit, match=r"--kv-cache-gib 3 does not fit: NUMA node 0"):
        cpu_kwargs(host, smol, kv_cache_gib=3)
    with pytest.raises(KVCacheDoesNotFit, match="too small.*--max-model-len"):
        cpu_kwargs(host, smol, kv_cache_gib=0.01)


def test_big_model_default_grows_to_one_full_sequence(tmp_path):
    llama13 = {"model_type": "llama", "torch_dtype": "float16", "hidden_size": 5120,
               "num_attention_heads": 40, "num_hidden_layers": 40}
    model = fake_model(tmp_path / "zhixi", llama13, weights_bytes=26 * GiB)
    per_token = 2 * 40 * 40 * 128 * 2
    big = fake_host(tmp_path / "big", nodes=((128, 120, "0-15"),), cpus="0-15")
    kv = cpu_kwargs(big, model, max_model_len=4096)["kv_cache_memory_bytes"]
    assert kv >= per_token * 4096 > 1 * GiB
    small = fake_host(tmp_path / "small", nodes=((32, 28, "0-15"),), cpus="0-15")
    with pytest.raises(KVCacheDoesNotFit, match="4096-token sequence needs 3.12 GiB"):
        cpu_kwargs(small, model, max_model_len=4096)


# --- CPU flags ---------------------------------------------------------------------------------


def test_avx2_only_runs_float32_and_counts_double_memory(tmp_path, smol):
    avx2 = fake_host(tmp_path / "a", flags=AVX2).read()
    bf16 = fake_host(tmp_path / "b", flags=AVX512_BF16).read()
    hub = "org/not-a-local-folder"  # no inspection: the dtype is planned without the folder's facts
    assert inspect_for_start(hub, dtype="auto", on_cpu=True, host=avx2) == (None, "float32")
    # issue 19: the dtype that runs, not vLLM's "as stored"
    assert inspect_for_start(hub, dtype="auto", on_cpu=True, host=bf16) == (None, "bfloat16")
    assert inspect_for_start(hub, dtype="bfloat16", on_cpu=True, host=avx2) == (None, "bfloat16")  # the user's choice stands
    assert engine_kwargs(EngineConfig(), smol, on_cpu=True, host=avx2, environ={})["dtype"] == "float32"
    f32, b16 = ModelFootprint.of(smol, "float32"), ModelFootprint.of(smol, "auto")
    assert f32.weights_bytes == 2 * b16.weights_bytes == 2 * 260 * MiB
    assert f32.kv_bytes_per_token == 2 * b16.kv_bytes_per_token == 2 * SMOL_KV_PER_TOKEN_BF16


def test_step_limits_reach_vllm_only_when_given(tmp_path, smol):
    host = fake_host(tmp_path, nodes=((64, 60, "0-7"),), cpus="0-7")
    plain = cpu_kwargs(host, smol)
    assert not {"max_num_batched_tokens", "max_num_seqs", "long_prefill_token_threshold"} & set(plain)
    capped = cpu_kwargs(host, smol, max_num_batched_tokens=512, long_prefill_token_threshold=32)
    assert (capped["max_num_batched_tokens"], capped["long_prefill_token_threshold"]) == (512, 32)
    engine = vllm_args(capped).create_engine_config()
    assert engine.scheduler_config.long_prefill_token_threshold == 32


# --- few cores, tensor parallelism -------------------------------------------------------------


def test_tp_gives_each_worker_its_own_cpus(tmp_path, smol):
    shape = fake_host(tmp_path, nodes=((16, 14, "0-3"), (16, 14, "4-6")), cpus="4-6").read()
    config = EngineConfig(tensor_parallel_size=3)  # 9 heads: TP 3 divides them
    engine_kwargs(config, smol, on_cpu=True, host=shape, environ={})
    assert layout_environment(config, shape, {}) == {"VLLM_CPU_OMP_THREADS_BIND": "4|5|6"}
    assert layout_environment(config, shape, {"VLLM_CPU_OMP_THREADS_BIND": "0|1|2"}) == {}


def test_more_workers_than_allowed_cpus_is_refused_before_start(tmp_path, smol):
    shape = fake_host(tmp_path, nodes=((16, 14, "0-3"), (16, 14, "4-5")), cpus="4-5").read()
    with pytest.raises(UserInputError, match=r"3 engine workers .*--tensor-parallel-size 3.* may use 2 \(cpus 4-5\)"):
        engine_kwargs(EngineConfig(tensor_parallel_size=3), smol, on_cpu=True, host=shape, environ={})
    # two replicas on the two allowed CPUs: both allocate on node 1, each the whole model
    kv = engine_kwargs(EngineConfig(data_parallel_size=2), smol, on_cpu=True, host=shape,
                       environ={})["kv_cache_memory_bytes"]
    assert 2 * kv + 2 * 260 * MiB + RUNTIME_RESERVE_BYTES <= shape.nodes[1].available


# --- other ways in: GPU, explicit fraction, vLLM's environment variable --------------------------


def test_gpu_path_stays_on_memory_utilization(tmp_path, smol):
    kwargs = engine_kwargs(EngineConfig(), smol, on_cpu=False)
    assert kwargs["gpu_memory_utilization"] == 0.9 and "kv_cache_memory_bytes" not in kwargs
    kwargs = engine_kwargs(EngineConfig(gpu_memory_utilization=0.5, kv_cache_gib=8), smol, on_cpu=False)
    assert kwargs["gpu_memory_utilization"] == 0.5 and kwargs["kv_cache_memory_bytes"] == 8 * GiB
    vllm_args(kwargs)


def test_cpu_explicit_fraction_is_kept_without_the_flag(tmp_path, smol):
    host = fake_host(tmp_path)
    kwargs = cpu_kwargs(host, smol, gpu_memory_utilization=0.3)
    assert kwargs["gpu_memory_utilization"] == 0.3 and "kv_cache_memory_bytes" not in kwargs


def test_vllm_kvcache_env_is_checked_and_the_flag_wins(tmp_path, smol):
    shape = fake_host(tmp_path, nodes=((8, 4, "0-1"),)).read()
    with pytest.raises(KVCacheDoesNotFit, match=KV_CACHE_SPACE_ENV):
        engine_kwargs(EngineConfig(), smol, on_cpu=True, host=shape, environ={KV_CACHE_SPACE_ENV: "6"})
    env = {KV_CACHE_SPACE_ENV: "6"}
    assert layout_environment(EngineConfig(kv_cache_gib=1), shape, env)[KV_CACHE_SPACE_ENV] is None
    kwargs = engine_kwargs(EngineConfig(kv_cache_gib=1), smol, on_cpu=True, host=shape, environ=env)
    assert kwargs["kv_cache_memory_bytes"] == GiB


def test_engine_args_object_carries_the_size(tmp_path, smol, monkeypatch):
    import ie_service.engine.prestart as prestart
    from ie_service.engine.vllm_engine import _engine_args

    monkeypatch.setattr(prestart, "check_weight_files", lambda folder: None)  # smol's weights are a sparse file
    host = fake_host(tmp_path, nodes=((8.21, 5.76, "0-1"), (8, 7.5, ""), (8, 7.9, ""))).read()
    monkeypatch.delenv(KV_CACHE_SPACE_ENV, raising=False)
    plan = preflight(EngineConfig(model=smol), on_cpu=True, host=host)
    for key in plan.environment:  # what _engine_args sets: put back after the test
        monkeypatch.delenv(key, raising=False)
    args = _engine_args(plan)
    assert args.kv_cache_memory_bytes == GiB


# --- the flag on the command line and in the image ------------------------------------------------


def test_cli_flag_reaches_engine_config():
    from ie_service.cli import build_parser
    from ie_service.cli.common import engine_cli_args, engine_config_from

    args = build_parser().parse_args(["serve", "--kv-cache-gib", "2.5"])
    config = engine_config_from(args)
    assert config.kv_cache_gib == 2.5
    flags = engine_cli_args(config)
    assert flags[flags.index("--kv-cache-gib") + 1] == "2.5"  # eval / kg build pass it to their server
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--kv-cache-gib" in help_text


def test_entrypoint_passes_kv_cache_env(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ie-service").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "ie-service").chmod(0o755)
    env = {"PATH": f"{fake}:{os.environ['PATH']}"}
    run = lambda extra: subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh")], capture_output=True,
                                       text=True, env={**env, **extra}, check=True).stdout.split()
    args = run({"IE_KV_CACHE_GIB": "3"})
    assert args[args.index("--kv-cache-gib") + 1] == "3"
    assert "--kv-cache-gib" not in run({})


def test_vllm_config_keeps_the_explicit_size(tmp_path, monkeypatch):
    """vLLM's own config step (platform checks, no engine started) keeps the size, so the
    CPU worker takes its explicit branch instead of the fraction-of-a-node arithmetic."""
    from ie_service.models.embedded import ensure_embedded_model
    from ie_service.engine.backend import is_cpu_backend

    if not is_cpu_backend():
        pytest.skip("the CPU backend's config path")
    monkeypatch.delenv(KV_CACHE_SPACE_ENV, raising=False)
    host = fake_host(tmp_path, nodes=((8.21, 5.76, "0-1"), (8, 7.5, ""), (8, 7.9, ""))).read()
    kwargs = engine_kwargs(EngineConfig(), str(ensure_embedded_model()), on_cpu=True, host=host, environ={})
    config = vllm_args(kwargs).create_engine_config()
    assert config.cache_config.kv_cache_memory_bytes == GiB


# --- KV block size: the prefix cache reuses whole blocks (issue 28) ------------------------------


def test_cpu_block_size_default_is_the_kernels_smallest(tmp_path, smol):
    from ie_service.engine.backend import CPU_BLOCK_MULTIPLE

    assert cpu_kwargs(fake_host(tmp_path), smol)["block_size"] == CPU_BLOCK_MULTIPLE == 32
    assert cpu_kwargs(fake_host(tmp_path / "b"), smol, block_size=64)["block_size"] == 64


def test_gpu_block_size_is_vllms_unless_asked(smol):
    assert "block_size" not in engine_kwargs(EngineConfig(), smol, on_cpu=False)
    kwargs = engine_kwargs(EngineConfig(block_size=16), smol, on_cpu=False)
    assert kwargs["block_size"] == 16
    assert vllm_args(kwargs).block_size == 16


def test_cpu_refuses_a_block_its_kernel_does_not_take(tmp_path, smol):
    from ie_service.engine.backend import BlockSizeRefused

    with pytest.raises(BlockSizeRefused, match=r"--block-size 48: .*multiple of 32.*use 32 .* or 64"):
        engine_kwargs(EngineConfig(block_size=48), smol, on_cpu=True, host=fake_host(tmp_path).read(), environ={})
    assert issubclass(BlockSizeRefused, UserInputError)


def test_cpu_block_multiple_is_vllms():
    """The constant restates vLLM's CPU attention backend (read without importing vllm at start)."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    from ie_service.engine.backend import CPU_BLOCK_MULTIPLE

    sizes = CPUAttentionBackend.get_supported_kernel_block_sizes()
    assert [getattr(s, "base", s) for s in sizes] == [CPU_BLOCK_MULTIPLE]


def test_vllm_config_keeps_the_block_size(tmp_path, monkeypatch):
    """vLLM's CPU platform step replaces only a block size nobody specified (with 128)."""
    from ie_service.models.embedded import ensure_embedded_model
    from ie_service.engine.backend import is_cpu_backend

    if not is_cpu_backend():
        pytest.skip("the CPU backend's config path")
    monkeypatch.delenv(KV_CACHE_SPACE_ENV, raising=False)
    host = fake_host(tmp_path).read()
    kwargs = engine_kwargs(EngineConfig(), str(ensure_embedded_model()), on_cpu=True, host=host, environ={})
    assert vllm_args(kwargs).create_engine_config().cache_config.block_size == 32


def test_block_size_flag_reaches_engine_config():
    from ie_service.cli import build_parser
    from ie_service.cli.common import engine_cli_args, engine_config_from

    config = engine_config_from(build_parser().parse_args(["serve", "--block-size", "64"]))
    assert config.block_size == 64
    flags = engine_cli_args(config)
    assert flags[flags.index("--block-size") + 1] == "64"
