"""Engine-layer helpers that need no running engine."""

from ie_service.engine.host import HostShape
from ie_service.engine.kv_cache import default_memory_utilization


def flags(text: str) -> HostShape:
    return HostShape(host_total=1, host_available=1, cpu_flags=frozenset(text.split()))


def test_cpu_bf16_detection():
    assert flags("fpu avx2 avx512f avx512_bf16 amx_tile").native_bf16 is True
    assert flags("fpu sse avx2 fma").native_bf16 is False


def test_memory_default():
    assert default_memory_utilization(on_cpu=False) == 0.9
    assert 0 < default_memory_utilization(on_cpu=True) <= 0.3


def test_cpu_backend_rule_matches_vllms_own():
    """The rule ``serve`` checks with before importing vllm gives vLLM's answer on this host,
    and honours vLLM's explicit CPU target."""
    from vllm.platforms import current_platform

    from ie_service.engine.backend import is_cpu_backend

    assert is_cpu_backend() == current_platform.is_cpu()
    assert is_cpu_backend({"VLLM_TARGET_DEVICE": "CPU"}) is True


def test_serve_refuses_before_importing_vllm(tmp_path):
    """A layout that cannot start is refused by ``serve`` in one line, and vllm was never
    imported (it costs ~10 s before any refusal otherwise)."""
    import json
    import subprocess
    import sys

    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 2,
        "intermediate_size": 1536, "vocab_size": 1000, "torch_dtype": "bfloat16"}))
    code = ("import sys\nfrom ie_service.cli import main\n"
            f"rc = main(['serve', '--model', {str(tmp_path)!r}, '--tensor-parallel-size', '7'])\n"
            "print('RC', rc, 'VLLM', sorted(m for m in sys.modules if m.split('.')[0] == 'vllm')[:3])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "does not divide the model's 9 attention heads" in out.stderr, out.stderr[-2000:]
    assert "RC 2 VLLM []" in out.stdout, (out.stdout, out.stderr[-2000:])
