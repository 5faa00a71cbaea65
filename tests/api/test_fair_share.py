"""The fair-share scheduler through the real engine: small requests sent while a many-prompt
extraction runs are answered before it ends, and the extraction's records are the ones it gets
alone (the hold changes when its prompts are computed, not what they compute)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.engine

SMALL = {"instruction": "Say hi.", "parameters": {"max_tokens": 4, "temperature": 0.0}}
TEXTS = [f"{who} met {whom} in {where} on Monday." for who, whom, where in [
    ("Barack Obama", "Angela Merkel", "Berlin"), ("Marie Curie", "Albert Einstein", "Brussels"),
    ("Ada Lovelace", "Charles Babbage", "London"), ("Nelson Mandela", "Desmond Tutu", "Cape Town"),
    ("Frida Kahlo", "Diego Rivera", "Mexico City"), ("Alan Turing", "John von Neumann", "Princeton"),
    ("Greta Thunberg", "Antonio Guterres", "New York"), ("Yuri Gagarin", "Sergei Korolev", "Moscow")]]
BATCH = {"texts": TEXTS, "schema": ["person", "location", "organization"]}


def entities(body: dict) -> list:
    return [[(e["text"], e["type"]) for e in r["entities"]] for r in body["results"]]


def test_small_requests_beside_a_batch_are_answered_first_and_the_batch_is_unchanged(server_url):
    alone = httpx.post(f"{server_url}/extract/ner/batch", json=BATCH, timeout=300)
    assert alone.status_code == 200, alone.text
    with ThreadPoolExecutor(2) as pool:
        batch = pool.submit(httpx.post, f"{server_url}/extract/ner/batch", json=BATCH, timeout=300)
        answered = 0
        while not batch.done() and answered < 3:
            r = httpx.post(f"{server_url}/generate", json=SMALL, timeout=120)
            assert r.status_code == 200, r.text
            answered += not batch.done()
        beside = batch.result()
    assert answered == 3, "the small requests waited for the batch"
    assert beside.status_code == 200, beside.text
    assert entities(beside.json()) == entities(alone.json())
