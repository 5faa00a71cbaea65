"""A bounded load test on loopback against real servers: no 5xx, nothing lost."""

import asyncio
import re
import sys
from pathlib import Path

import httpx
import pytest

from conftest import GUARD_KEY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from loadgen import run_load  # noqa: E402

pytestmark = pytest.mark.engine


def test_load_on_shared_server_all_answered(server_url):
    result = asyncio.run(run_load(server_url, requests=36, concurrency=12, deadline_s=420))
    assert result.lost == 0 and result.server_errors == 0, result.summary()
    assert result.statuses == {200: 36}, result.summary()


def test_overload_is_refused_with_429_not_lost(guarded_url):
    """A server admitting 4 outstanding requests, hit by 24 at once: the rest get 429."""
    headers = {"Authorization": f"Bearer {GUARD_KEY}"}
    before = rejected(httpx.get(f"{guarded_url}/metrics", headers=headers).text)
    result = asyncio.run(run_load(guarded_url, requests=24, concurrency=24, deadline_s=420, api_key=GUARD_KEY))
    metrics = httpx.get(f"{guarded_url}/metrics", headers=headers).text
    assert result.lost == 0 and result.server_errors == 0, result.summary()
    assert set(result.statuses) == {200, 429} and result.statuses[200] >= 4, result.summary()
    assert rejected(metrics) - before == result.statuses[429]


def rejected(metrics: str) -> float:
    found = re.search(r'^ie_rejected_total\{reason="queue"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0
