"""Run-time adapters (``serve --lora``) through the routes, with a scripted engine: the name
reaches the engine from every /extract/* route and /generate, unknown names are 422 naming
the loaded ones, /v1/models lists them; and the flags → vLLM arguments (fast; the real
engine in test_adapter_answers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.models.adapters import lora_engine_kwargs, parse_lora
from ie_service.models.embedded import ADAPTER_DIR
from ie_service.extraction.tasks import TASKS

SCHEMAS = {"ner": ["person"], "re": ["founded"], "ee": {"Acquisition": ["buyer"]}}


@pytest.fixture()
def engine():
    return ScriptedEngine(lambda p, s: "{}", adapters={"ie": "2", "mine": "md5:abc"})


@pytest.fixture()
def client(engine):
    with TestClient(create_app(lambda: engine)) as c:
        yield c


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_every_extract_route_passes_the_adapter(client, engine, task):
    r = client.post(f"/extract/{task}", json={"text": "Ann founded Zeta.", "schema": SCHEMAS[task], "adapter": "mine"})
    assert r.status_code == 200, r.text
    r = client.post(f"/extract/{task}/batch", json={"texts": ["a b", "c d"], "schema": SCHEMAS[task], "adapter": "ie"})
    assert r.status_code == 200, r.text
    assert engine.adapter_calls == ["mine", "ie", "ie"]


def test_default_is_the_served_model(client, engine):
    assert client.post("/extract/ner", json={"text": "x y", "schema": ["a"]}).status_code == 200
    assert client.post("/generate", json={"instruction": "hi"}).status_code == 200
    assert engine.adapter_calls == [None, None]


def test_generate_passes_the_adapter(client, engine):
    assert client.post("/generate", json={"instruction": "hi", "adapter": "ie"}).status_code == 200
    assert engine.adapter_calls == ["ie"]


@pytest.mark.parametrize("path,body", [("/generate", {"instruction": "hi"}),
                                       ("/extract/ner", {"text": "x", "schema": ["a"]})])
def test_unknown_adapter_is_422_naming_the_loaded(client, engine, path, body):
    r = client.post(path, json={**body, "adapter": "nope"})
    assert r.status_code == 422
    assert "'nope'" in r.json()["error"] and "ie, mine" in r.json()["error"]
    assert engine.calls == []


def test_unknown_adapter_without_any_loaded():
    with TestClient(create_app(lambda: ScriptedEngine())) as c:
        r = c.post("/generate", json={"instruction": "hi", "adapter": "x"})
    assert r.status_code == 422 and "--lora" in r.json()["error"]


def test_models_lists_adapters_with_versions(client):
    data = client.get("/v1/models").json()["data"]
    assert [d["id"] for d in data] == ["scripted", "ie", "mine"]
    assert data[1]["parent"] == "scripted" and data[1]["version"] == "2" and data[2]["version"] == "md5:abc"
    assert data[0]["version"] is None


def test_lora_flags_to_vllm_arguments(tmp_path):
    second = tmp_path / "run"
    (second / "adapter").mkdir(parents=True)
    config = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
    (second / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "r": 24}))
    (second / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    adapters = parse_lora([f"ie={ADAPTER_DIR}", f"mine={second}"])  # a train run folder will do
    assert [(a.name, a.rank) for a in adapters] == [("ie", 16), ("mine", 24)]
    assert adapters[0].version == "2"  # the shipped manifest's
    assert adapters[1].path == (second / "adapter").resolve() and adapters[1].version.startswith("md5:")
    assert lora_engine_kwargs(adapters) == {"enable_lora": True, "max_loras": 2, "max_lora_rank": 32}
    assert lora_engine_kwargs([]) == {}
    with pytest.raises(ValueError, match="twice"):
        parse_lora([f"ie={ADAPTER_DIR}", f"ie={ADAPTER_DIR}"])


def test_engine_kwargs_and_cli_round_trip():
    from ie_service.cli import build_parser
    from ie_service.cli.common import engine_cli_args, engine_config_from
    from ie_service.engine.start_plan import engine_kwargs

    args = build_parser().parse_args(["serve", "--lora", f"ie={ADAPTER_DIR}", "--lora", f"b={ADAPTER_DIR}"])
    config = engine_config_from(args)
    assert config.lora == [f"ie={ADAPTER_DIR}", f"b={ADAPTER_DIR}"]
    again = engine_config_from(build_parser().parse_args(["serve", *engine_cli_args(config)]))
    assert again == config
    assert engine_config_from(build_parser().parse_args(["serve"])).lora == []
    kw = engine_kwargs(config, str(Path(".")), on_cpu=False)
    assert (kw["enable_lora"], kw["max_loras"], kw["max_lora_rank"]) == (True, 2, 16)
