"""Engine-layer helpers that need no running engine."""

from ie_service.engine.host import HostShape
from ie_service.engine.vllm_engine import default_memory_utilization


def flags(text: str) -> HostShape:
    return HostShape(host_total=1, host_available=1, cpu_flags=frozenset(text.split()))


def test_cpu_bf16_detection():
    assert flags("fpu avx2 avx512f avx512_bf16 amx_tile").native_bf16 is True
    assert flags("fpu sse avx2 fma").native_bf16 is False


def test_memory_default():
    assert default_memory_utilization(on_cpu=False) == 0.9
    assert 0 < default_memory_utilization(on_cpu=True) <= 0.3
