from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ie_service.local_server import local_server  # noqa: E402

LOGS = Path(__file__).resolve().parent.parent / ".cache" / "test-logs"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A real ``ie-service serve`` (vLLM, embedded model) on loopback, shared by the session."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with local_server([], log_path=LOGS / "server-tp1.log") as url:
        yield url
