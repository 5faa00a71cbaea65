"""Issue 20 through the real engine on loopback: a request over the prompt cap is refused at
once while /health keeps answering, and a slow grammar does not starve a later one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.engine

SMALL = {"instruction": "Say hi.", "parameters": {"max_tokens": 4, "temperature": 0.0}}


def test_a_request_over_the_prompt_cap_is_refused_at_once_and_health_answers(server_url):
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(httpx.post, f"{server_url}/extract/ner",
                          json={"text": "x\n" * 55000, "schema": ["person"]}, timeout=120)
        health = []
        while not big.done():
            started = time.perf_counter()
            assert httpx.get(f"{server_url}/health", timeout=30).status_code == 200
            health.append(time.perf_counter() - started)
            time.sleep(0.05)
        r = big.result()
    assert r.status_code == 413, r.text  # was: the whole server frozen for about a minute, then 413
    assert r.elapsed.total_seconds() < 10
    assert max(health, default=0) < 1.0, health


def test_a_slow_grammar_does_not_starve_a_later_one(server_url):
    slow = {**SMALL, "json_schema": {"type": "string", "pattern": "[a-z]{1,25000}"}}
    r = httpx.post(f"{server_url}/generate", json=slow, timeout=60)
    assert r.status_code in (422, 503), r.text
    r = httpx.post(f"{server_url}/generate", json=slow, timeout=60)  # remembered: refused at once
    assert r.status_code in (422, 503) and r.elapsed.total_seconds() < 12, r.text
    started = time.perf_counter()
    r = httpx.post(f"{server_url}/generate", json={**SMALL, "json_schema": {"type": "boolean"}}, timeout=60)
    assert r.status_code == 200, r.text  # was: 422 "took over 10s" while the slow compile ran
    assert r.json()["generated_text"] in ("true", "false")
    assert time.perf_counter() - started < 10
