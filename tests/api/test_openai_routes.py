"""The OpenAI routes' own logic with a stand-in for vLLM's serving layer (fast): the guard
applies (key, outstanding limit, metrics), ``n`` claims engine prompts, bad JSON is a 400 in
OpenAI's error shape, and an engine without the API answers 404 (never a 5xx)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings


class StandIn:
    """``hold``: a chat call waits (after admission) until ``release`` is set; ``entered`` says
    one has begun, so a test orders requests by events, not by sleeps that a loaded host outruns."""

    def __init__(self, hold: bool = False) -> None:
        self.bodies: list = []
        self.entered, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    async def chat(self, body, raw_request):
        self.bodies.append(body)
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return JSONResponse({"object": "chat.completion", "usage": {"completion_tokens": 5}})

    async def completion(self, body, raw_request):
        self.bodies.append(body)
        return JSONResponse({"object": "text_completion"}, status_code=200)


def app_with(api: StandIn | None, **settings):
    engine = ScriptedEngine()
    if api is not None:
        engine.openai = lambda: api
    return create_app(lambda: engine, settings=ServiceSettings(**settings))


def test_answers_pass_through_and_are_counted():
    api = StandIn()
    with TestClient(app_with(api)) as c:
        r = c.post("/v1/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 200 and r.json()["object"] == "chat.completion"
        assert c.post("/v1/completions", json={"prompt": "x"}).json()["object"] == "text_completion"
        assert api.bodies == [{"model": "m", "messages": []}, {"prompt": "x"}]
        metrics = c.get("/metrics").text
        assert 'ie_requests_total{path="/v1/chat/completions",status="200"} 1.0' in metrics
        assert 'ie_output_tokens_total{task="openai"} 5.0' in metrics


def test_guard_key_and_bad_bodies():
    with TestClient(app_with(StandIn(), api_keys=["k"])) as c:
        assert c.post("/v1/chat/completions", json={}).status_code == 401
        r = c.post("/v1/chat/completions", content=b"{nope", headers={"authorization": "Bearer k"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("the request body is not JSON")
        r = c.post("/v1/completions", json={"prompt": "x", "n": 500}, headers={"authorization": "Bearer k"})
        assert r.status_code == 413 and "engine prompts" in r.json()["error"]


def test_outstanding_limit_is_429_with_retry_after():
    api = StandIn(hold=True)
    with TestClient(app_with(api, max_outstanding=3)) as c:
        assert c.post("/v1/completions", json={"prompt": "x", "n": 4}).status_code == 413  # over the cap
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(c.post, "/v1/chat/completions", json={"messages": [], "n": 2})
            assert api.entered.wait(30)  # admitted: it holds 2 of the 3
            r = c.post("/v1/chat/completions", json={"messages": [], "n": 2})  # 2 + 2 > 3
            api.release.set()
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert slow.result().status_code == 200


def test_engine_without_the_api_is_404():
    with TestClient(app_with(None)) as c:
        r = c.post("/v1/chat/completions", json={})
        assert r.status_code == 404 and "no OpenAI-compatible API" in r.json()["error"]["message"]
