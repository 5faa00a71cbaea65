"""Run-time LoRA adapters through the real engine (vLLM CPU) on loopback: the base with the
shipped adapter applied per request (``--lora ie=...``) answers as the merged default does
(the session ``server_url``), and two adapters loaded at once answer differently, in one batch.

The second adapter is the shipped one with its B matrices scaled to zero: it must answer
exactly as the base with no adapter, while ``ie`` does not."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

pytestmark = pytest.mark.engine  # lora_url: a shared server (conftest.py)
README_SENTENCE = ("Barack Obama met Angela Merkel in Berlin.", ["person", "location"])
PROMPTS = [  # the README's sentence and a few of the sort the eval sends
    README_SENTENCE,
    ("Apple unveiled the iPhone 15 in Cupertino on Tuesday.", ["organization", "product", "location"]),
    ("@jenny can't wait for the Taylor Swift show at Madison Square Garden tonight !!",
     ["person", "location", "creative-work", "group"]),
]


def ner(url: str, text: str, schema: list[str], adapter: str | None = None) -> dict:
    body = {"text": text, "schema": schema, **({"adapter": adapter} if adapter else {})}
    r = httpx.post(f"{url}/extract/ner", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def test_runtime_adapter_answers_as_the_merged_default(server_url, lora_url):
    for text, schema in PROMPTS:
        merged = ner(server_url, text, schema)
        runtime = ner(lora_url, text, schema, adapter="ie")
        assert runtime["raw_output"] == merged["raw_output"], text
    # /generate too: the same greedy completion
    body = {"instruction": "Name the capital of France.", "parameters": {"temperature": 0, "max_tokens": 24}}
    a = httpx.post(f"{server_url}/generate", json=body, timeout=300).json()
    b = httpx.post(f"{lora_url}/generate", json={**body, "adapter": "ie"}, timeout=300).json()
    assert a["generated_text"] == b["generated_text"]


def test_two_adapters_at_once_answer_differently(lora_url):
    text, schema = README_SENTENCE

    async def all_at_once() -> list[dict]:  # in flight together: one engine batch, three weight sets
        async with httpx.AsyncClient(timeout=300) as client:
            bodies = [{"text": text, "schema": schema, **({"adapter": a} if a else {})}
                      for a in ("ie", "off", None, "ie", "off", None)]
            rs = await asyncio.gather(*(client.post(f"{lora_url}/extract/ner", json=b) for b in bodies))
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
        return [r.json()["raw_output"] for r in rs]

    ie, off, base, ie2, off2, base2 = asyncio.run(all_at_once())
    assert ie == ie2 and off == off2 and base == base2
    assert off == base  # B = 0: the adapter adds nothing
    assert ie != off
    assert json.loads(ie[0])["person"] or json.loads(ie[0])["location"]  # the IE adapter finds something


def test_models_lists_adapters_and_unknown_is_422(lora_url):
    data = httpx.get(f"{lora_url}/v1/models").json()["data"]
    cards = {d["id"]: d for d in data}
    assert cards["ie"]["version"] == "2" and cards["off"]["version"].startswith("md5:")
    assert cards["ie"]["parent"] == data[0]["id"]
    r = httpx.post(f"{lora_url}/generate", json={"instruction": "hi", "adapter": "nope"}, timeout=60)
    assert r.status_code == 422 and "ie, off" in r.json()["error"]
