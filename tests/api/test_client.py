"""``ie_service.client`` against the app with a scripted engine (typed answers, batches,
errors) and against mock transports (retries on 429 / 503 / connection errors, bounded)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from ie_service.client import AsyncIEClient, IEClient, IEConnectionError, IEStatusError
from ie_service.extraction.records import Entity

TEXT = "Barack Obama met Angela Merkel in Berlin."


def ner_reply(prompt: str, schema: dict | None) -> str:
    if "Berlin" in prompt:
        return json.dumps({"person": ["Angela Merkel"], "location": ["Berlin"]})
    return json.dumps({"person": [], "location": ["Paris"]})


def through(tc: TestClient) -> httpx.MockTransport:
    """An httpx transport that hands each request to the in-process app."""
    def handle(request: httpx.Request) -> httpx.Response:
        r = tc.request(request.method, str(request.url), headers=dict(request.headers), content=request.content)
        return httpx.Response(r.status_code, headers=dict(r.headers), content=r.content)
    return httpx.MockTransport(handle)


@pytest.fixture()
def app_client():
    engine = ScriptedEngine(ner_reply)
    with TestClient(create_app(lambda: engine, settings=ServiceSettings(api_keys=["k"]))) as tc:
        yield IEClient("http://testserver", api_key="k", transport=through(tc)), engine


def test_ner_returns_the_servers_typed_records(app_client):
    ie, engine = app_client
    result = ie.ner(TEXT, ["person", "location"], max_tokens=99, language="en")
    berlin = next(e for e in result.entities if e.type == "location")
    assert isinstance(berlin, Entity) and (berlin.text, berlin.start, berlin.end, berlin.grounded) == \
        ("Berlin", 34, 40, True)
    assert result.language == "en" and result.stats.prompts == 1
    assert engine.calls[0][1].max_tokens == 99  # a sampling key went into parameters


def test_a_list_of_texts_goes_in_batches_and_keeps_order(app_client, monkeypatch):
    import ie_service.client as client

    monkeypatch.setattr(client, "MAX_BATCH", 2)
    ie, _ = app_client
    results = ie.ner([TEXT, "Paris", TEXT], {"person": "a human", "location": "a place"})
    assert [[e.text for e in r.entities] for r in results] == [["Angela Merkel", "Berlin"], ["Paris"],
                                                                 ["Angela Merkel", "Berlin"]]


def test_health_models_generate(app_client):
    ie, _ = app_client
    assert ie.health().model == "scripted"
    assert ie.models().data[0].id == "scripted"
    answer = ie.generate("Say hi", max_tokens=3)
    assert answer.generated_text == json.dumps({"person": [], "location": ["Paris"]}) and answer.error is None


def test_errors_carry_status_and_the_servers_message(app_client):
    ie, engine = app_client
    with pytest.raises(IEStatusError) as bad:
        ie.ner(TEXT, [])
    assert bad.value.status == 422 and "schema" in bad.value.message
    with pytest.raises(IEStatusError) as bad:
        ie.generate("x", temperature=-1)
    assert bad.value.status == 422 and "temperature" in bad.value.message
    wrong = IEClient("http://testserver", api_key="nope", transport=ie._http._transport)
    with pytest.raises(IEStatusError) as denied:
        wrong.health()
    assert denied.value.status == 401 and denied.value.message == "missing or invalid API key"
    with pytest.raises(ValueError, match="unknown task"):
        ie.extract("nope", TEXT, ["x"])


def scripted_transport(replies: list, seen: list):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply
    return handle


def test_retries_429_honouring_retry_after_then_answers(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("ie_service.client.time.sleep", waits.append)
    seen: list = []
    replies = [httpx.Response(429, json={"error": "busy"}, headers={"retry-after": "2"}),
               httpx.ConnectError("refused"),
               httpx.Response(503, json={"error": "engine busy"}),
               httpx.Response(200, json={"status": "ok", "model": "m"})]
    ie = IEClient("http://x", transport=httpx.MockTransport(scripted_transport(replies, seen)), backoff=0.25)
    assert ie.health().model == "m"
    assert waits == [2.0, 0.5, 1.0] and len(seen) == 4  # Retry-After, then backoff 0.25 * 2**attempt


def test_retries_are_bounded(monkeypatch):
    monkeypatch.setattr("ie_service.client.time.sleep", lambda s: None)
    seen: list = []
    busy = [httpx.Response(429, json={"error": "server busy: 9 engine prompts outstanding"}) for _ in range(3)]
    ie = IEClient("http://x", transport=httpx.MockTransport(scripted_transport(busy, seen)), retries=2)
    with pytest.raises(IEStatusError) as exc:
        ie.health()
    assert exc.value.status == 429 and "server busy" in exc.value.message and len(seen) == 3
    down = [httpx.ConnectError("refused") for _ in range(2)]
    ie = IEClient("http://x", transport=httpx.MockTransport(scripted_transport(down, seen)), retries=1)
    with pytest.raises(IEConnectionError, match="refused"):
        ie.health()
    timed_out = [httpx.ReadTimeout("slow")]  # the server may be working on it: not resent
    ie = IEClient("http://x", transport=httpx.MockTransport(scripted_transport(timed_out, seen)))
    with pytest.raises(IEConnectionError):
        ie.health()


def test_async_client_retries_and_parses(monkeypatch):
    async def no_wait(s):
        return None

    monkeypatch.setattr("ie_service.client.asyncio.sleep", no_wait)
    answer = {"language": "en", "template": "t@1", "raw_output": [], "warnings": [],
              "stats": {"prompts": 1}, "entities": [{"text": "Berlin", "type": "location", "start": 34, "end": 40}]}
    seen: list = []
    replies = [httpx.Response(429, json={"error": "busy"}), httpx.Response(200, json=answer),
               httpx.Response(400, json={"error": {"message": "openai-shaped"}})]

    async def run():
        async with AsyncIEClient("http://x", transport=httpx.MockTransport(scripted_transport(replies, seen))) as ie:
            result = await ie.ner(TEXT, ["location"])
            with pytest.raises(IEStatusError, match="openai-shaped"):
                await ie.health()
            return result

    assert asyncio.run(run()).entities[0].end == 40
    assert json.loads(seen[0].content)["text"] == TEXT
