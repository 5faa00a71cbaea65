"""Access control, limits, admission (429), timeouts (504), metrics — scripted engine."""

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine, slowed
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from ie_service.engine.generation import Generation


def client_for(settings: ServiceSettings, delay: float = 0.0):
    engine = slowed(ScriptedEngine(lambda p, s: '{"person": ["Obama"]}'), delay)
    return TestClient(create_app(lambda: engine, settings=settings)), engine


@pytest.mark.parametrize("path,method", [("/health", "get"), ("/metrics", "get"), ("/v1/models", "get"),
                                         ("/generate", "post"), ("/extract/ner", "post"),
                                         ("/openapi.json", "get"), ("/nope", "get")])
def test_api_key_guards_every_route(path, method):
    client, _ = client_for(ServiceSettings(api_keys=["s3cret"]))
    with client:
        r = getattr(client, method)(path)
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert getattr(client, method)(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = getattr(client, method)(path, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code != 401
        assert getattr(client, method)(path, headers={"X-API-Key": "s3cret"}).status_code != 401


def test_no_keys_means_open():
    client, _ = client_for(ServiceSettings())
    with client:
        assert client.get("/health").status_code == 200


def test_body_size_limit_413():
    client, engine = client_for(ServiceSettings(max_request_bytes=2048))
    with client:
        r = client.post("/extract/ner", json={"text": "x" * 5000, "schema": ["person"]})
        assert r.status_code == 413 and "2048" in r.json()["error"]
        chunked = client.post("/generate", content=iter([b'{"instruction": "', b"y" * 4000, b'"}']),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert client.post("/generate", json={"instruction": "small"}).status_code == 200
        assert engine.calls and all("y" * 100 not in c[0] for c in engine.calls)


def test_bounded_queue_answers_429_and_loses_nothing():
    client, engine = client_for(ServiceSettings(max_outstanding=3), delay=0.5)
    with client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: client.post("/generate", json={"instruction": f"q{i}"}).status_code,
                              range(8)))
        assert codes.count(200) >= 3 and codes.count(429) >= 1
        assert set(codes) <= {200, 429}
        assert len(engine.calls) == codes.count(200)  # every accepted request was answered
        metrics = client.get("/metrics").text
        assert 'ie_rejected_total{reason="queue"}' in metrics
        assert "ie_outstanding_requests 0.0" in metrics


def test_timeout_is_504_and_work_is_cancelled():
    client, engine = client_for(ServiceSettings(request_timeout_s=0.3), delay=5)
    with client:
        r = client.post("/generate", json={"instruction": "slow"})
        assert r.status_code == 504 and "aborted" in r.json()["error"]
        assert engine.calls == []  # the generation never completed


def test_metrics_count_requests_and_extraction_outcomes():
    client, engine = client_for(ServiceSettings())

    async def truncated(prompt, options, schema=None, grammar=None, **_):
        return Generation('{"person": [', 3, 5, "length")

    with client:
        client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"]})
        engine.generate = truncated
        client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"]})
        text = client.get("/metrics").text
    assert 'ie_requests_total{path="/extract/ner",status="200"} 2.0' in text
    assert 'ie_extraction_events_total{kind="truncated",task="ner"} 1.0' in text
    assert 'ie_request_seconds_count{path="/extract/ner"} 2.0' in text


def test_access_log_is_json_with_request_id(caplog):
    client, _ = client_for(ServiceSettings())
    with client, caplog.at_level(logging.INFO, logger="ie_service.access"):
        r = client.get("/health")
    line = json.loads([rec.getMessage() for rec in caplog.records if rec.name == "ie_service.access"][-1])
    assert line["path"] == "/health" and line["status"] == 200
    assert line["request_id"] == r.headers["x-request-id"]
