"""The OpenAI-compatible routes through the real engine, called with the official ``openai``
package: answers, streaming = non-streamed greedy text, a ``json_schema`` response that
parses, bad requests (4xx with a message), and a wrong key (401) on a server with --api-key."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from conftest import GUARD_KEY
from live_app import record_answer

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.engine

GREEDY = {"temperature": 0.0, "max_tokens": 24, "seed": 7}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(server_url: str):
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(client) -> str:
    return client.models.list().data[0].id


def test_models_in_openai_shape(client, server_url):
    listed = client.models.list()
    card = listed.data[0]
    assert card.object == "model" and card.id and isinstance(card.created, int) and card.owned_by
    raw = httpx.get(f"{server_url}/v1/models").json()
    assert raw["object"] == "list" and raw["data"][0]["max_model_len"] > 0 and raw["data"][0]["replicas"] == 1


def test_chat_answers_and_its_stream_reassembles_to_it(client, model):
    answer = client.chat.completions.create(model=model, messages=QUESTION, **GREEDY)
    text = answer.choices[0].message.content
    assert text.strip() and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens > 0 and answer.model == model
    stream = client.chat.completions.create(model=model, messages=QUESTION, stream=True, **GREEDY)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 1  # really streamed, not one chunk
    assert "".join(pieces) == text
    record_answer("openai_chat", answer.model_dump())


def test_completion_with_stop_and_logprobs(client, model):
    answer = client.completions.create(model=model, prompt="1, 2, 3, 4,", stop=[","], logprobs=2, **GREEDY)
    choice = answer.choices[0]
    assert "," not in choice.text and choice.finish_reason == "stop"
    assert len(choice.logprobs.tokens) >= 1 and all(len(t) <= 2 for t in choice.logprobs.top_logprobs)
    stream = client.completions.create(model=model, prompt="1, 2, 3, 4,", stop=[","], stream=True, **GREEDY)
    assert "".join(c.choices[0].text for c in stream if c.choices) == choice.text
    record_answer("openai_completion", answer.model_dump())


def test_json_schema_response_parses(client, model):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name a city and its country as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema}},
        temperature=0.0, max_tokens=64)
    jsonschema.validate(json.loads(answer.choices[0].message.content), schema)
    record_answer("openai_json_schema", answer.choices[0].message.content)


def test_bad_requests_are_4xx_with_a_message(client, model, server_url):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model, messages=QUESTION, temperature=-1)
    assert "temperature" in str(bad.value)
    record_answer("openai_bad_request", str(bad.value))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=QUESTION, max_tokens=4)
    with pytest.raises(openai.BadRequestError):  # a schema over our compile bounds, before the engine
        client.chat.completions.create(
            model=model, messages=QUESTION, max_tokens=4,
            response_format={"type": "json_schema", "json_schema": {
                "name": "loop", "schema": {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}}})
    for body in (b"{not json", b"[]", json.dumps({"model": model}).encode()):
        r = httpx.post(f"{server_url}/v1/chat/completions", content=body,
                       headers={"content-type": "application/json"}, timeout=60)
        assert 400 <= r.status_code < 500 and r.json()["error"]["message"], (body, r.text)
    r = httpx.post(f"{server_url}/v1/completions", json={"model": model, "prompt": "x", "n": 10_000}, timeout=60)
    assert r.status_code == 413 and "engine prompts" in r.json()["error"]


def test_wrong_key_is_401_and_the_right_one_answers(guarded_url):
    url = guarded_url  # conftest: --api-key GUARD_KEY --max-outstanding 4
    wrong = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="x", messages=QUESTION, max_tokens=2)
    right = openai.OpenAI(base_url=f"{url}/v1", api_key=GUARD_KEY, max_retries=0, timeout=120)
    model = right.models.list().data[0].id
    assert right.completions.create(model=model, prompt="Hello", max_tokens=2, temperature=0).choices[0].text
    page = httpx.get(f"{url}/")  # the playground loads without the key; nothing else does
    assert page.status_code == 200 and "content-security-policy" in page.headers
    assert httpx.get(f"{url}/templates").status_code == 401
