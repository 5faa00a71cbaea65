"""Running a model: what the rest of the service (api, extraction) calls.

The public face is below. Every name is loaded on first use, so importing this package, or a
light module of it, imports nothing heavy: ``vllm_engine`` is the only module that imports
vllm (``Engine``; ``preflight`` in ``engine_args`` checks a start without it), ``config`` and ``sampling`` need pydantic, ``embedded``
only the standard library until it converts a model (torch, transformers), which lets
``training.fit`` use it where pydantic is absent.

Modules: ``config`` (EngineConfig), ``generation`` (the TextEngine contract, Generation,
errors), ``sampling`` (SamplingOptions), ``prompt_formats`` (prompt format per model family),
``json_schema_guard`` (schema checks and grammar-compile bounds), ``host`` (NUMA / cgroup
shape and KV cache sizing), ``parallel`` (data / multi-node parallel layouts, CPU binding),
``embedded`` (the embedded default model), ``tokenizer_choice`` (fast or sentencepiece),
``engine_args`` (the engine's arguments and refusals, no vllm), ``vllm_engine``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "EngineConfig": "config",
    "Generation": "generation",
    "TextEngine": "generation",
    "PromptTooLong": "generation",
    "EngineUnavailable": "generation",
    "SamplingOptions": "sampling",
    "MAX_TEMPERATURE": "sampling",
    "PromptFormat": "prompt_formats",
    "resolve_format": "prompt_formats",
    "check_json_schema": "json_schema_guard",
    "ensure_embedded_model": "embedded",
    "ensure_base_model": "embedded",
    "read_host": "host",
    "HostShape": "host",
    "Engine": "vllm_engine",  # imports vllm
    "preflight": "engine_args",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from .config import EngineConfig
    from .embedded import ensure_base_model, ensure_embedded_model
    from .generation import EngineUnavailable, Generation, PromptTooLong, TextEngine
    from .host import HostShape, read_host
    from .json_schema_guard import check_json_schema
    from .prompt_formats import PromptFormat, resolve_format
    from .sampling import MAX_TEMPERATURE, SamplingOptions
    from .engine_args import preflight
    from .vllm_engine import Engine


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
