"""A ``kill -9`` of a real server's engine core is followed by a new engine in place (issue 20),
on a server of its own like the shared guarded one: no other test sees the restarted engine."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import GUARDED_ARGS, GUARD_KEY, LOGS, engine_core_of, health_until_back
from ie_service.local_server import local_server

pytestmark = pytest.mark.engine

SMALL = {"instruction": "Say hi.", "parameters": {"max_tokens": 4, "temperature": 0.0}}
RECOVERY_LOG = LOGS / "server-recovery.log"


@pytest.fixture()
def recovery_url():
    """A server started for the kill test alone (``--api-key`` and ``--max-outstanding 4``)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with local_server(GUARDED_ARGS, log_path=RECOVERY_LOG) as url:
        yield url


def test_kill_9_of_the_engine_core_is_followed_by_a_new_engine(recovery_url):
    url, headers = recovery_url, {"Authorization": f"Bearer {GUARD_KEY}"}
    assert httpx.post(f"{url}/generate", json=SMALL, headers=headers, timeout=120).status_code == 200
    engine_core_of(url).kill()
    killed = time.monotonic()
    states = health_until_back(url, headers, log_path=RECOVERY_LOG)
    assert "restarting" in states, states
    r = httpx.post(f"{url}/generate", json=SMALL, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    print(f"kill -9 to the next 200: {time.monotonic() - killed:.1f}s")
