"""Running a model: what the rest of the service (api, extraction) calls.

The public face is below. Every name is loaded on first use, so importing this package, or a
light module of it, imports nothing heavy: ``vllm_engine`` is the only module that imports
vllm (``Engine``, started from the plan that ``prestart.preflight`` makes without it);
``config`` and ``sampling`` need pydantic.

Modules: ``interface`` (TextEngine: the engine as callers see it, and its OpenAIAPI),
``config`` (EngineConfig), ``prestart`` (what ``serve`` checks before vllm is imported: the
compiler, the model's location, the host), ``start_plan`` (a start decided, each decision once,
in order: ``backend`` (the platform, the KV block), ``quantization_methods``, ``parallel``
(data / multi-node parallel layouts, CPU layout and binding), ``kv_cache`` (the KV cache size),
``engine_args`` (vLLM's arguments assembled from those values, no vllm), then ``process_env``
(the engine processes' environment)), ``generation`` (Generation, activity, errors),
``supervisor`` (health verdicts, restarts of a dead engine), ``sampling`` (SamplingOptions),
``json_schema_guard`` (schema checks and grammar-compile bounds), ``host`` (NUMA / cgroup
shape and KV cache sizing), ``fair_scheduler`` (vLLM's scheduler, bigger requests' prefill
held while a smaller one runs), ``sp_tokenizer`` (vLLM's sentencepiece tokenizer mode),
``vllm_engine``.
What a model folder is (inspection, prompt format, tokenizer choice, the embedded model,
adapters, weight tools) lives in :mod:`ie_service.models`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "EngineConfig": "config",
    "Generation": "generation",
    "TextEngine": "interface",
    "OpenAIAPI": "interface",
    "PromptTooLong": "generation",
    "EngineUnavailable": "generation",
    "SamplingOptions": "sampling",
    "MAX_TEMPERATURE": "sampling",
    "check_json_schema": "json_schema_guard",
    "read_host": "host",
    "HostShape": "host",
    "Engine": "vllm_engine",  # imports vllm
    "preflight": "prestart",
    "StartPlan": "start_plan",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from .config import EngineConfig
    from .generation import EngineUnavailable, Generation, PromptTooLong
    from .interface import OpenAIAPI, TextEngine
    from .host import HostShape, read_host
    from .json_schema_guard import check_json_schema
    from .sampling import MAX_TEMPERATURE, SamplingOptions
    from .prestart import preflight
    from .start_plan import StartPlan
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
