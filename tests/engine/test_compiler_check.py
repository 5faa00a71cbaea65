"""No C++ compiler: vLLM's torch.compile'd sampler helpers run eagerly (``engine.compiler_check``).

Seen in the CPU image (2026-12-03): without g++ the engine died at the first extraction, since
every record asks for logprobs (its confidence) and vLLM ranks them with a compiled helper."""

from __future__ import annotations

import stat

import httpx
import pytest

from conftest import LOGS
from ie_service.engine.compiler_check import (DISABLE_ENV, NoCompiler, check_compiler, compiler_environment,
                                              cxx_compiler)
from ie_service.local_server import local_server

MISSING = "/nonexistent/g++"


@pytest.fixture()
def fake_cxx(tmp_path):
    """A compiler that answers ``--version`` (exit 0) and one that is broken (exit 1)."""
    made = {}
    for name, code in (("good", 0), ("broken", 1)):
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\nexit {code}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        made[name] = str(path)
    return made


def test_the_compiler_named_by_cxx_is_used_when_it_answers(fake_cxx):
    assert cxx_compiler({"CXX": fake_cxx["good"]}) == fake_cxx["good"]
    assert cxx_compiler({"CXX": fake_cxx["broken"]}) is None
    assert cxx_compiler({"CXX": MISSING}) is None


def test_no_compiler_turns_dynamo_off_for_the_engine_processes():
    assert compiler_environment(enforce_eager=True, environ={"CXX": MISSING}) == {DISABLE_ENV: "1"}


def test_a_working_compiler_or_the_users_choice_changes_nothing(fake_cxx):
    assert compiler_environment(True, {"CXX": fake_cxx["good"]}) == {}
    assert compiler_environment(True, {"CXX": MISSING, DISABLE_ENV: "0"}) == {}


def test_compiling_without_a_compiler_is_refused_before_start():
    with pytest.raises(NoCompiler, match=r"--no-enforce-eager .* /nonexistent/g\+\+ was not found"):
        check_compiler(enforce_eager=False, environ={"CXX": MISSING})
    with pytest.raises(NoCompiler):
        compiler_environment(False, {"CXX": MISSING})
    with pytest.raises(NoCompiler):  # the user's TORCHDYNAMO_DISABLE does not let compilation start without one
        compiler_environment(False, {"CXX": MISSING, DISABLE_ENV: "1"})


@pytest.mark.engine(lane="side")  # its own small server, one at a time (tests/lanes.py)
def test_extraction_through_the_real_engine_without_a_compiler(monkeypatch):
    """The CPU image's case: confidences (logprobs) from an engine on a host without g++."""
    monkeypatch.setenv("CXX", MISSING)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    log = LOGS / "server-no-compiler.log"
    with local_server([], log_path=log) as url:
        body = {"text": "Barack Obama met Angela Merkel in Berlin.", "schema": ["person", "location"]}
        r = httpx.post(f"{url}/extract/ner", json=body, timeout=300)
        assert r.status_code == 200, r.text
        entities = r.json()["entities"]
        assert entities and all(0.0 < e["confidence"] <= 1.0 for e in entities), entities
        assert httpx.get(f"{url}/health").status_code == 200  # the engine is still alive
    assert f"{DISABLE_ENV}=1" in log.read_text()
