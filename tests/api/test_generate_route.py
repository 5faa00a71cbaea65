"""Routing and validation of /generate with a scripted engine (fast; real engine in
tests/engine/test_generation.py)."""

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.engine.generation import EngineActivity


@pytest.fixture()
def engine():
    return ScriptedEngine(lambda prompt, schema: f"echo:{prompt}")


@pytest.fixture()
def client(engine):
    with TestClient(create_app(lambda: engine)) as c:
        yield c


def test_generate_applies_format_and_parameters(client, engine):
    r = client.post("/generate", json={"instruction": "Do", "input": "this",
                                       "parameters": {"max_tokens": 7, "temperature": 0, "stop": "x"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generated_text"] == "echo:Do\nthis"
    assert body["error"] is None and body["num_output_tokens_cf"] == 2
    prompt, options, schema = engine.calls[0]
    assert options.max_tokens == 7 and options.stop_list() == ["x"] and schema is None


def test_knowlm_defaults(client, engine):
    client.post("/generate", json={"instruction": "Do"})
    options = engine.calls[0][1]
    assert (options.top_p, options.top_k, options.max_tokens, options.temperature) == (1.0, -1, 16, 1.0)


@pytest.mark.parametrize(
    "body,needle",
    [
        ({}, "instruction: Field required"),
        ({"instruction": ""}, "at least 1 character"),
        ({"instruction": "x", "parameters": {"temperature": -1}}, "temperature"),
        ({"instruction": "x", "parameters": {"top_p": 0}}, "top_p"),
        ({"instruction": "x", "parameters": {"max_tokens": 0}}, "max_tokens"),
        ({"instruction": "x", "parameters": {"num_beams": 4}}, "num_beams"),
        ({"instruction": "x", "parameters": {"bogus": 1}}, "bogus"),
        ({"instruction": 5}, "instruction"),
    ],
)
def test_bad_requests_are_422_with_message(client, body, needle):
    r = client.post("/generate", json=body)
    assert r.status_code == 422
    assert needle in r.json()["error"]


def test_non_json_body_is_422(client):
    r = client.post("/generate", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]


def test_prompt_too_long_is_400(client):
    r = client.post("/generate", json={"instruction": "word " * 600})
    assert r.status_code == 400 and "tokens" in r.json()["error"]


def test_health_reports_dead_engine_as_503(client, engine):
    assert client.get("/health").json()["status"] == "ok"
    engine.healthy = False
    r = client.get("/health")
    assert r.status_code == 503 and "engine unhealthy" in r.json()["error"]


def test_models_lists_the_engine(client):
    data = client.get("/v1/models").json()["data"]
    assert data[0]["id"] == "scripted" and data[0]["max_model_len"] == 512


def test_dead_engine_is_503_not_500(client, engine):
    from ie_service.engine.generation import EngineUnavailable

    async def dead(*args, **kwargs):
        raise EngineUnavailable("engine failed: EngineCore died")

    engine.generate = dead
    r = client.post("/generate", json={"instruction": "x"})
    assert r.status_code == 503 and "engine failed" in r.json()["error"]


def test_models_and_metrics_report_the_engine_replicas():
    engine = ScriptedEngine()
    engine.replicas = 2
    engine.activity = lambda: EngineActivity(steps=40, unfinished=2, finished_by_replica={0: 3, 1: 5})
    with TestClient(create_app(lambda: engine)) as c:
        assert c.get("/v1/models").json()["data"][0]["replicas"] == 2
        text = c.get("/metrics").text
    assert 'ie_replica_finished_requests{replica="0"} 3.0' in text
    assert 'ie_replica_finished_requests{replica="1"} 5.0' in text
    assert "ie_engine_steps 40.0" in text and "ie_engine_unfinished_requests 2.0" in text
