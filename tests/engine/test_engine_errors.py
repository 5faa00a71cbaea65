"""What the real :class:`~ie_service.engine.vllm_engine.Engine` makes of what vLLM refuses or fails
at, on a fake ``AsyncLLM`` (tests/fakes.py: vLLM's own SamplingParams validation, the real
tokenizer and xgrammar, no engine process), through the app (issue 12, part 4): a client's
error is a 422 before the engine, a request's own failure a 500 with its reason, a dead engine
a 503, an engine's error finish never a 200, and a schema's compile time is bounded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from fakes import FakeAsyncLLM
from ie_service.api.app import create_app


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ie_service.models.embedded import ensure_embedded_model

    return AutoTokenizer.from_pretrained(ensure_embedded_model())


@pytest.fixture()
def real_engine(tokenizer):
    from ie_service.engine.vllm_engine import Engine
    from ie_service.engine.config import EngineConfig

    def make(**fake):
        llm = FakeAsyncLLM(tokenizer, **fake)
        return Engine(llm, EngineConfig(prompt_format="raw"), "fake", "fake"), llm

    return make


def post_generate(engine, body):
    with TestClient(create_app(lambda: engine)) as client:
        return client.post("/generate", json=body)


# --- client errors that were 500 ------------------------------------------------------------------------


@pytest.mark.parametrize("schema,needle", [
    ({"type": "nonsense"}, "not a valid JSON Schema"),
    ({"$ref": "#/$defs/missing"}, "points to nothing"),
    ({"type": "string", "pattern": "(["}, "pattern"),
    ({"type": "string", "pattern": "(?<=a)b"}, "grammar"),  # valid for Python, not for xgrammar
])
def test_invalid_json_schema_is_422_before_the_engine(real_engine, schema, needle):
    engine, llm = real_engine()
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    assert llm.calls == []


def test_vllm_validation_errors_are_422(real_engine):
    """Whatever vLLM's SamplingParams refuses (here: past the API's checks) is a 422."""
    from ie_service.errors import InvalidRequest
    from ie_service.engine.sampling import SamplingOptions

    engine, llm = real_engine()
    hot = SamplingOptions.model_construct(**{**SamplingOptions().model_dump(), "temperature": 5.0})
    with pytest.raises(InvalidRequest, match="temperature"):
        asyncio.run(engine.generate("x", hot))
    from vllm.exceptions import VLLMValidationError

    engine, llm = real_engine(raises=VLLMValidationError("stop cannot contain an empty string."))
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 422 and "empty string" in r.json()["error"]


# --- a request's engine failure is not "engine unavailable" -------------------------------------------


def test_per_request_engine_failure_is_500_with_reason_not_503(real_engine):
    from vllm.v1.engine.exceptions import EngineGenerateError

    failure = EngineGenerateError()
    failure.__cause__ = OverflowError("int too big to convert")
    engine, _ = real_engine(raises=failure)
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 500 and "OverflowError: int too big" in r.json()["error"], r.text


def test_dead_engine_still_503(real_engine):
    from vllm.v1.engine.exceptions import EngineDeadError

    engine, _ = real_engine(raises=EngineDeadError())
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 503 and r.json()["error"].startswith("engine failed: ")
    assert r.json()["error"] != "engine failed: "


# --- failure reported as success -------------------------------------------------------------------


@pytest.mark.parametrize("schema", [
    {"$ref": "#"},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]},
])
def test_looping_ref_is_422_not_200_with_empty_text(real_engine, schema):
    engine, llm = real_engine(finish="error")  # what vLLM answered for these
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code == 422 and "no finite instance" in r.json()["error"], r.text
    assert llm.calls == []


def test_recursive_schema_with_a_way_out_passes(real_engine):
    tree = {"type": "object", "properties": {"name": {"type": "string"},
                                             "children": {"type": "array", "items": {"$ref": "#"}}},
            "required": ["name", "children"]}
    engine, llm = real_engine()
    assert post_generate(engine, {"instruction": "x", "json_schema": tree}).status_code == 200


def test_engine_error_finish_is_never_a_200(real_engine):
    engine, _ = real_engine(finish="error")
    with_schema = post_generate(engine, {"instruction": "x", "json_schema": {"type": "object"}})
    assert with_schema.status_code == 422 and "grammar" in with_schema.json()["error"]
    engine, _ = real_engine(finish="error")
    plain = post_generate(engine, {"instruction": "x"})
    assert plain.status_code == 500 and plain.json()["error"].startswith("generation failed")


# --- schema compile time ------------------------------------------------------------------------------


def test_huge_enum_is_refused_quickly(real_engine):
    engine, llm = real_engine()
    schema = {"type": "string", "enum": [f"value {i}" for i in range(100_000)]}
    started = time.perf_counter()
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code in (413, 422), r.text  # 1.3 MB: the body limit or the schema cap
    assert time.perf_counter() - started < 5 and llm.calls == []
    mid = {"type": "string", "enum": [f"value {i}" for i in range(1500)]}  # 25 KB, under the body limit
    r = post_generate(engine, {"instruction": "x", "json_schema": mid})
    assert r.status_code == 422 and "at most 1000" in r.json()["error"]
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 100}
                                             for i in range(400)}}
    r = post_generate(engine, {"instruction": "x", "json_schema": wide})
    assert r.status_code == 422 and "bytes" in r.json()["error"]


def test_grammar_compile_time_is_bounded(tokenizer, monkeypatch):
    import hashlib

    from ie_service.engine.json_schema_guard import GrammarCompileGuard
    from ie_service.errors import InvalidJsonSchema

    def burn(seconds: float) -> None:  # CPU work that releases the GIL, like xgrammar's
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            hashlib.sha256(b"x" * (1 << 20)).digest()

    # any CPU used counts as the schema's own (a loaded test machine gives it little)
    monkeypatch.setattr("ie_service.engine.json_schema_guard.CPU_SHARE_OF_OWN_FAULT", 0.0)
    guard = GrammarCompileGuard(tokenizer, 49152, timeout_s=0.2)
    compiled = threading.Event()

    def slow_compile(text: str) -> None:  # a grammar that compiles for 2 s of CPU
        burn(2)
        compiled.set()

    guard._compile = slow_compile
    with pytest.raises(InvalidJsonSchema, match="took over 0.2s"):
        asyncio.run(guard.check({"type": "object"}))
    assert not compiled.is_set(), "the refusal came only when the compile had ended"  # load-independent
    guard.close()
