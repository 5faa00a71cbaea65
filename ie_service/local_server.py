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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    with local_servers([(list(extra_args), log_path)], timeout=timeout, progress=progress) as urls:
        yield urls[0]


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a terminated server; kill it after 60 s."""
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    _reap(proc)


@dataclass
class _Started:
    proc: subprocess.Popen
    url: str
    headers: dict | None  # the API key, for /health
    log_path: Path | None
    log: Any  # the open log file, or subprocess.DEVNULL
    args: list[str]  # serve's arguments but --port


MAX_RELAUNCHES = 2
BIND_FAILED = "address already in use"


def _launch(args: list[str], log_path: Path | None) -> _Started:
    """``ie-service serve`` on a free port, in the background."""
    port = free_port()
    key = args[args.index("--api-key") + 1] if "--api-key" in args[:-1] else None
    cmd = [sys.executable, "-m", "ie_service.cli", "serve", "--port", str(port), *args]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    return _Started(proc, f"http://127.0.0.1:{port}", {"authorization": f"Bearer {key}"} if key else None,
                    log_path, log, args)


def _lost_its_port(server: _Started) -> bool:
    """The server exited because its port was taken (known only from its log)."""
    return BIND_FAILED in _log_tail(server.log_path, lines=200).lower()


class ServerGroup(list):
    """The URLs of servers started together, in order; :meth:`stop` ends one early (its
    memory back before the group ends)."""

    def __init__(self, started: list[_Started]) -> None:
        super().__init__(s.url for s in started)
        self._procs = {s.url: s.proc for s in started}

    def stop(self, url: str) -> None:
        _stop(self._procs[url])


@contextmanager
def local_servers(
    servers: list[tuple[list[str], Path | None]], timeout: float = 600.0, progress: bool = False,
) -> Iterator[ServerGroup]:
    """Several servers, ``(extra_args, log_path)`` each, started at once: their start-ups
    (mostly single-threaded imports) overlap. Yields their URLs, in order, once every one
    answers /health 200; all are stopped on exit."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started: list[_Started] = []
    bar = None
    try:
        for extra_args, log_path in servers:
            started.append(_launch(list(extra_args), log_path))
        relaunches = 0
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc="start server", unit="s", bar_format="{desc}: {n_fmt}{unit} {postfix}")
        deadline = time.monotonic() + timeout
        waiting = list(started)
        while waiting:
            if bar is not None:
                bar.update(1)
            for server in list(waiting):
                if server.proc.poll() is not None and relaunches < MAX_RELAUNCHES and _lost_its_port(server):
                    # the port was free when chosen, but another process (e.g. an engine's own
                    # distributed ports) took it during the start-up: again, on a new port
                    relaunches += 1
                    if server.log_path:
                        server.log.close()
                    fresh = _launch(server.args, server.log_path)
                    started[started.index(server)] = fresh
                    waiting[waiting.index(server)] = fresh
                    continue
                if server.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {server.proc.returncode}; see {server.log_path}"
                                       f"{_log_tail(server.log_path)}")
                try:
                    if httpx.get(f"{server.url}/health", headers=server.headers, timeout=2).status_code == 200:
                        waiting.remove(server)
                except httpx.TransportError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"server did not become healthy in {timeout:.0f}s"
                                   f"{_log_tail(waiting[0].log_path)}")
            if waiting:
                time.sleep(1.0)
        if bar is not None:
            bar.close()
            bar = None
        yield ServerGroup(started)
    finally:
        if bar is not None:
            bar.close()
        for server in started:  # all at once, then wait for each
            if server.proc.poll() is None:
                server.proc.terminate()
        for server in started:
            _reap(server.proc)
            if server.log_path:
                server.log.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
