from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ie_service.local_server import local_server  # noqa: E402

LOGS = Path(__file__).resolve().parent.parent / ".cache" / "test-logs"


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Every test leaves ``os.environ`` as it found it: vLLM's config step (run in-process by
    unit tests) writes ``LD_PRELOAD``, ``VLLM_WORKER_MULTIPROC_METHOD`` and more into it, and
    servers started by later tests inherit the process environment (seen in CI: a leaked
    torch ``libgomp`` preload beside Intel OpenMP failed every later engine start)."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium for the page tests (tests/headless_chromium.py)."""
    from headless_chromium import find_chromium

    return find_chromium()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A real ``ie-service serve`` (vLLM, embedded model) on loopback, shared by the session."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with local_server([], log_path=LOGS / "server-tp1.log") as url:
        yield url


GUARD_KEY = "s3cret"


@pytest.fixture(scope="session")
def guarded_url() -> Iterator[str]:
    """A second real server, behind ``--api-key`` and admitting 4 outstanding requests,
    shared by the tests of those guards and of recovery (the kill -9 test leaves it running
    on a restarted engine, which the later tests then use)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with local_server(["--api-key", GUARD_KEY, "--max-outstanding", "4"],
                      log_path=LOGS / "server-guarded.log") as url:
        yield url


def engine_core_of(url: str):
    """The vLLM engine core process of the server at ``url`` (started by this session)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "serve" in cmd and "--port" in cmd and cmd[cmd.index("--port") + 1] == port:
            for child in proc.children(recursive=True):
                try:
                    if "EngineCore" in " ".join(child.cmdline()) + child.name():
                        return child
                except psutil.Error:
                    continue
    raise AssertionError(f"no engine core under the server at {url}")


def health_until_back(url: str, headers: dict | None = None, limit_s: float = 400,
                      log_path: Path | None = None) -> set[str]:
    """After a kill: the ``/health`` 503 statuses seen until it answered 200 again. Fails when
    it is not back within ``limit_s`` or the server stops answering (the log's tail then)."""
    import time

    import httpx

    states: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        try:
            r = httpx.get(f"{url}/health", headers=headers, timeout=5)
        except httpx.TransportError:  # the process exited: not what we want
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise AssertionError(f"{url} stopped answering /health\n{tail}")
        if r.status_code == 503:
            states.add(r.json()["status"])
        elif r.status_code == 200 and states:
            return states
        time.sleep(0.5)
    raise AssertionError(f"{url}/health not back to 200 in {limit_s:.0f}s (503 statuses seen: {states})")

