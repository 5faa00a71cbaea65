"""The one engine interface (``engine/interface.py``): the real engine and the scripted fake
both implement every member of it, ``generate`` with the same parameters, so callers never
probe an engine for what it has."""

from __future__ import annotations

import inspect

import pytest

from fakes import FakeAsyncLLM, ScriptedEngine
from ie_service.engine.interface import TextEngine

GENERATE = list(inspect.signature(TextEngine.generate).parameters)


def test_the_scripted_engine_implements_the_interface():
    engine = ScriptedEngine()
    assert isinstance(engine, TextEngine)
    assert list(inspect.signature(ScriptedEngine.generate).parameters) == GENERATE
    assert engine.openai is None and engine.prompt_format is None  # absent: declared, not missing


def test_the_real_engine_implements_the_interface():
    transformers = pytest.importorskip("transformers")
    from ie_service.engine.config import EngineConfig
    from ie_service.engine.vllm_engine import Engine
    from ie_service.models.embedded import ensure_embedded_model

    tokenizer = transformers.AutoTokenizer.from_pretrained(ensure_embedded_model())
    engine = Engine(FakeAsyncLLM(tokenizer), EngineConfig(prompt_format="raw"), "fake", "fake")
    assert isinstance(engine, TextEngine)
    assert list(inspect.signature(Engine.generate).parameters) == GENERATE
    assert engine.prompt_format is not None and engine.openai is not None
    assert engine.in_flight == 0 and engine.last_progress > 0 and engine.activity().unfinished == 0
