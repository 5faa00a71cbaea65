"""The start plan (issue 32 item 1): ``preflight`` decides a start once; ``Engine.start`` builds
vLLM from the plan and decides nothing, the same on every restart."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from fake_hosts import fake_host, fake_model
from fakes import FakeAsyncLLM
from ie_service.engine.config import EngineConfig


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ie_service.models.embedded import ensure_embedded_model

    return AutoTokenizer.from_pretrained(ensure_embedded_model())


@pytest.fixture()
def restored_environ():
    """Engine.start sets the plan's environment in os.environ: put it back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def count_calls(monkeypatch, counts: Counter, module, name: str) -> None:
    original = getattr(module, name)

    def counted(*args, **kwargs):
        counts[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


def test_the_engine_starts_and_restarts_with_the_plan_preflight_made(tmp_path, monkeypatch, tokenizer,
                                                                      restored_environ):
    import ie_service.engine.compiler_check as compiler_check
    import ie_service.engine.prestart as prestart
    import ie_service.engine.start_plan as start_plan
    import ie_service.engine.vllm_engine as vllm_engine
    import ie_service.models.adapters as adapters
    import ie_service.models.inspection as inspection
    from ie_service.engine.backend import CPU_BLOCK_MULTIPLE
    from ie_service.engine.prestart import preflight
    from ie_service.engine.start_plan import StartPlan, engine_kwargs
    from ie_service.models.embedded import ADAPTER_DIR

    folder = fake_model(tmp_path / "smol")
    config = EngineConfig(model=folder, served_model_name="prod", lora=[f"ie={ADAPTER_DIR}"])  # validated here
    monkeypatch.setattr(prestart, "check_weight_files", lambda path: None)  # its weights are a sparse file
    counts: Counter = Counter()
    count_calls(monkeypatch, counts, inspection, "inspect_model")
    count_calls(monkeypatch, counts, compiler_check, "cxx_compiler")
    count_calls(monkeypatch, counts, start_plan, "choose_tokenizer")
    count_calls(monkeypatch, counts, adapters, "read_adapter")

    built = []

    class RecordingAsyncLLM:
        """Stands in for vLLM's AsyncLLM: keeps the AsyncEngineArgs each start built it with."""

        @classmethod
        def from_engine_args(cls, args, stat_loggers=None):
            built.append(args)
            return FakeAsyncLLM(tokenizer)

    monkeypatch.setattr(vllm_engine, "AsyncLLM", RecordingAsyncLLM)
    host = fake_host(tmp_path, nodes=((8.21, 5.76, "0-1"),)).read()
    plan = preflight(config, on_cpu=True, host=host, environ={})
    assert isinstance(plan, StartPlan)
    assert (plan.model_path, plan.served_name, plan.on_cpu, plan.host) == (folder, "prod", True, host)
    assert plan.tokenizer.mode == "fast" and plan.block_size == CPU_BLOCK_MULTIPLE
    assert plan.environment["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"  # two CPUs, one worker

    first = vllm_engine.Engine.start(plan)
    again = vllm_engine.Engine.start(plan)  # the supervisor's restart after a crash
    assert counts == {"inspect_model": 1, "choose_tokenizer": 1, "cxx_compiler": 1, "read_adapter": 1}  # once per plan
    assert [a.name for a in plan.adapters] == ["ie"]
    assert len(built) == 2
    for args in built:
        assert {key: getattr(args, key) for key in plan.engine_kwargs} == dict(plan.engine_kwargs)
    for engine in (first, again):
        assert (engine.model_path, engine.model_name, engine.config) == (folder, "prod", config)
        assert engine.inspection is plan.inspection
        assert engine.adapters == {"ie": plan.adapters[0].version}
    assert all(os.environ.get(key) == value for key, value in plan.environment.items())
    # the arguments are those engine_kwargs computes for the same folder and host
    assert dict(plan.engine_kwargs) == engine_kwargs(config, folder, on_cpu=True, host=host, environ={})


def test_the_plan_refuses_before_anything_starts(tmp_path, monkeypatch):
    import ie_service.engine.prestart as prestart
    from ie_service.engine.compiler_check import NoCompiler
    from ie_service.engine.backend import BlockSizeRefused
    from ie_service.engine.prestart import preflight

    monkeypatch.setattr(prestart, "check_weight_files", lambda path: None)
    folder = fake_model(tmp_path / "smol")
    host = fake_host(tmp_path).read()
    with pytest.raises(NoCompiler):
        preflight(EngineConfig(model=folder, enforce_eager=False), on_cpu=True, host=host,
                  environ={"CXX": "/nonexistent/g++"})
    with pytest.raises(BlockSizeRefused):
        preflight(EngineConfig(model=folder, block_size=48), on_cpu=True, host=host, environ={})
