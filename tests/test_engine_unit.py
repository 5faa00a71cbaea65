"""Engine-layer helpers that need no running engine."""

from ie_service.engine.vllm_engine import cpu_has_native_bf16, cpu_thread_binding, default_memory_utilization


def test_cpu_bf16_detection():
    assert cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_bf16 amx_tile") is True
    assert cpu_has_native_bf16("flags : fpu sse avx2 fma") is False


def test_thread_binding_round_robin():
    assert cpu_thread_binding(3, 2) == "0|1|0"
    assert cpu_thread_binding(2, 16) == "0|1"


def test_memory_default():
    assert default_memory_utilization(on_cpu=False) == 0.9
    assert 0 < default_memory_utilization(on_cpu=True) <= 0.3
