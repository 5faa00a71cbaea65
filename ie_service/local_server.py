"""Start a real ``ie-service serve`` on loopback: for the tools that need a service and were
given no ``--url`` (``eval``, ``kg build``), and for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _log_tail(log_path: Path | None, lines: int = 25) -> str:
    """The last lines of the server's log, for the error (a CI run shows only the error)."""
    if log_path is None or not Path(log_path).is_file():
        return ""
    tail = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "; its last lines:\n" + "\n".join(tail)


@contextmanager
def local_server(
    extra_args: list[str] = (), log_path: Path | None = None, timeout: float = 600.0,
    progress: bool = False,
) -> Iterator[str]:
    """Run ``ie-service serve`` in a subprocess; yield its base URL once /health answers 200.
    ``progress``: a bar counting the seconds of start-up.

    The server is stopped on exit, also when this process gets SIGTERM (in the main thread)."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    port = free_port()
    args = list(extra_args)
    key = args[args.index("--api-key") + 1] if "--api-key" in args[:-1] else None
    headers = {"authorization": f"Bearer {key}"} if key else None
    cmd = [sys.executable, "-m", "ie_service.cli", "serve", "--port", str(port), *extra_args]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="start server", unit="s", bar_format="{desc}: {n_fmt}{unit} {postfix}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if bar is not None:
                bar.update(1)
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}{_log_tail(log_path)}")
            try:
                if httpx.get(f"{url}/health", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server did not become healthy in {timeout:.0f}s{_log_tail(log_path)}")
            time.sleep(1.0)
        if bar is not None:
            bar.close()
            bar = None
        yield url
    finally:
        if bar is not None:
            bar.close()
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
