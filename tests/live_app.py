"""An app (with a scripted engine) served by uvicorn on loopback in a thread, for tests that
need a real HTTP server (a browser, a CLI talking to --url) without the engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from ie_service.local_server import free_port
from waits import wait_until


@contextmanager
def serve_app(app, headers: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", headers=headers).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, 30, interval=0.05, what=f"{url}/health answering 200")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def record_answer(name: str, value: object) -> None:
    """With ``IE_DOCS_ANSWERS=FILE`` set, keep a real answer a test got (docs quote them)."""
    import json
    import os

    path = os.environ.get("IE_DOCS_ANSWERS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "value": value}, ensure_ascii=False, default=str) + "\n")
