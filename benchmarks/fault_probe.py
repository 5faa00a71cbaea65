"""Fault probe (issue 20), loopback only and bounded: starts its own ``ie-service serve``
and reproduces the "stops the service for everyone" findings, printing figures:

1. ``/health`` latency, and how many of its answers were not 200 (busy must not read as
   hung), while the heaviest legal request runs (``--heavy-chars`` 110k characters, 6
   labels: under the 64-prompt cap), and a 110k-character text of 55000 lines (over the prompt cap: must
   be refused at once, not after a minute of chunking on the event loop);
2. a small ``/generate`` (4 tokens): p50/p95 idle, and beside the heavy request; the
   emoji text (``"a"*60000 + "😀"*6000``) is chunked to fit (200, not 400);
3. a slow grammar sent twice, then an innocent schema: the innocent one must not be
   refused for the slow one's compile time (the slow one is now refused by its shape, 422);
4. ``kill -STOP`` of the engine core: ``/health`` must turn 503; ``kill -9`` of the engine
   core, then of a model worker: seconds to the next 200 of ``/health`` and of ``/generate``,
   and the ``Retry-After`` of the 503s meanwhile.

    flock /tmp/engine.lock .venv/bin/python benchmarks/fault_probe.py [--out benchmarks/results/fault_probe.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ie_service.local_server import local_server  # noqa: E402

HEAVY_LABELS = ["person", "location", "organization", "product", "event", "date"]
SMALL = {"instruction": "Say hi.", "parameters": {"max_tokens": 4, "temperature": 0.0}}
WORDS = ["Barack", "Obama", "met", "Angela", "Merkel", "in", "Berlin", "on", "Monday", "and", "they",
         "talked", "about", "trade", "the", "weather", "markets"]


def heavy_text(chars: int = 199_000, seed: int = 0) -> str:
    rng = random.Random(seed)
    out, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "."
        out.append(sentence)
        n += len(sentence) + 1
    return " ".join(out)[:chars]


def engine_processes(kind: str = "EngineCore") -> list[psutil.Process]:
    """The vLLM processes of ``kind`` (``EngineCore``, ``Worker``) under the server started here."""
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        try:
            text = " ".join(child.cmdline()) + " " + child.name()
        except psutil.Error:
            continue
        if kind in text:
            found.append(child)
    return found


def engine_cores() -> list[psutil.Process]:
    return engine_processes("EngineCore")


async def restart_after_kill(client: httpx.AsyncClient, victim: psutil.Process, limit: float) -> dict:
    """``kill -9`` of ``victim``: seconds until the service notices, and to the next 200 of
    ``/health`` and of a small ``/generate`` (with the 503s' Retry-After seen meanwhile)."""
    victim.kill()
    killed = time.monotonic()
    retry_after = set()
    while time.monotonic() - killed < 60:  # until the service has noticed
        r = await client.get("/health", timeout=5)
        if r.status_code != 200:
            retry_after.add(r.headers.get("retry-after"))
            break
        await asyncio.sleep(0.1)
    noticed = time.monotonic() - killed
    gen_503 = await client.post("/generate", json=SMALL, timeout=30)
    if gen_503.status_code == 503:
        retry_after.add(gen_503.headers.get("retry-after"))
    health = await until_200(client, "/health", killed, limit)
    gen = await until_200(client, "/generate", killed, limit, body=SMALL)
    return {"noticed_s": round(noticed, 1), "health_200_s": None if health is None else round(health, 1),
            "generate_200_s": None if gen is None else round(gen, 1),
            "retry_after_on_503": sorted(str(v) for v in retry_after)}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def timed(client: httpx.AsyncClient, method: str, path: str, **kw) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        r = await client.request(method, path, **kw)
        status = r.status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - started


async def small_series(client: httpx.AsyncClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        status, s = await timed(client, "POST", "/generate", json=SMALL)
        if status == 200:
            out.append(s)
    return out


async def beside(client: httpx.AsyncClient, body: dict, path: str, deadline: float) -> dict:
    """Run ``body`` on ``path``; meanwhile poll /health and send small requests."""
    heavy = asyncio.create_task(timed(client, "POST", path, json=body, timeout=deadline))
    health: list[float] = []
    unhealthy: list[int] = []
    small: list[float] = []

    async def poll_health() -> None:
        while not heavy.done():
            status, s = await timed(client, "GET", "/health", timeout=30)
            health.append(s)
            if status != 200:
                unhealthy.append(status)
            await asyncio.sleep(0.25)

    async def smalls() -> None:
        await asyncio.sleep(0.5)
        while not heavy.done():
            status, s = await timed(client, "POST", "/generate", json=SMALL, timeout=120)
            if status == 200:
                small.append(s)

    await asyncio.gather(poll_health(), smalls())
    status, seconds = heavy.result()
    return {"status": status, "seconds": round(seconds, 2),
            "health_max_ms": round(max(health) * 1000, 1) if health else None,
            "health_p95_ms": round(pct(health, 0.95) * 1000, 1) if health else None,
            "health_answers": len(health), "health_not_200": len(unhealthy),
            "small_n": len(small), "small_p50_s": round(pct(small, 0.5), 3),
            "small_p95_s": round(pct(small, 0.95), 3)}


async def until_200(client: httpx.AsyncClient, path: str, started: float, limit: float,
                    body: dict | None = None) -> float | None:
    while time.monotonic() - started < limit:
        if body is None:
            status, _ = await timed(client, "GET", path, timeout=10)
        else:
            status, _ = await timed(client, "POST", path, timeout=30, json=body)
        if status == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    return None


async def probe(url: str, args: argparse.Namespace) -> dict:
    out: dict = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await small_series(client, 3)  # warm-up
        idle = await small_series(client, args.small)
        out["small_idle"] = {"n": len(idle), "p50_s": round(pct(idle, 0.5), 3), "p95_s": round(pct(idle, 0.95), 3)}
        print("idle", out["small_idle"], flush=True)

        out["x_lines"] = await beside(client, {"text": "x\n" * 55000, "schema": ["person"]}, "/extract/ner", 300)
        print("x-lines", out["x_lines"], flush=True)
        out["heavy"] = await beside(client, {"text": heavy_text(args.heavy_chars), "schema": HEAVY_LABELS},
                                    "/extract/ner", args.deadline)
        print("heavy", out["heavy"], flush=True)
        if out["small_idle"]["p95_s"] and out["heavy"]["small_n"]:
            out["heavy"]["small_p95_vs_idle"] = round(out["heavy"]["small_p95_s"] / out["small_idle"]["p95_s"], 1)
        status, s = await timed(client, "POST", "/extract/ner", timeout=args.deadline,
                                json={"text": "a" * 60000 + "😀" * 6000, "schema": ["person"]})
        out["emoji"] = {"status": status, "seconds": round(s, 2)}
        print("emoji", out["emoji"], flush=True)

        slow = {"type": "string", "pattern": "[a-z]{1,25000}"}
        grammar = []
        for schema in (slow, slow, {"type": "boolean"}):
            status, s = await timed(client, "POST", "/generate", timeout=60,
                                    json={**SMALL, "json_schema": schema})
            grammar.append({"status": status, "seconds": round(s, 2)})
        out["grammar"] = grammar
        print("grammar", grammar, flush=True)

        cores = engine_cores()
        out["engine_cores"] = len(cores)
        if cores:
            core = cores[0]
            core.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            first_503 = None
            while time.monotonic() - stopped < args.stop_s:
                status, _ = await timed(client, "GET", "/health", timeout=5)
                if status == 503 and first_503 is None:
                    first_503 = round(time.monotonic() - stopped, 1)
                await asyncio.sleep(0.5)
            core.send_signal(signal.SIGCONT)
            back = await until_200(client, "/health", time.monotonic(), 60)
            out["sigstop"] = {"stopped_s": args.stop_s, "health_503_after_s": first_503,
                              "health_200_after_cont_s": None if back is None else round(back, 1)}
            print("sigstop", out["sigstop"], flush=True)

            out["kill9_engine_core"] = await restart_after_kill(client, engine_cores()[0], args.restart_limit)
            print("kill -9 engine core", out["kill9_engine_core"], flush=True)
            workers = engine_processes("Worker")
            if workers:
                out["kill9_worker"] = await restart_after_kill(client, workers[0], args.restart_limit)
                print("kill -9 worker", out["kill9_worker"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=10, help="small requests for the idle figure")
    ap.add_argument("--deadline", type=float, default=600, help="seconds for the heavy request")
    ap.add_argument("--heavy-chars", type=int, default=110_000,
                    help="the heavy request's text (6 labels): the heaviest the prompt cap admits")
    ap.add_argument("--stop-s", type=float, default=16, help="seconds the engine core is stopped")
    ap.add_argument("--restart-limit", type=float, default=240)
    ap.add_argument("--serve-args", default="", help="more arguments for the server, e.g. '--max-num-batched-tokens 256'")
    ap.add_argument("--out", default="benchmarks/results/fault_probe.json")
    serve_and_run(ap.parse_args(), probe)


def serve_and_run(args: argparse.Namespace, measure: Callable[[str, argparse.Namespace], Awaitable[dict]]) -> None:
    """Start a server with ``args.serve_args`` (its log beside ``args.out``), run ``measure``
    against it, and print and write its figures (with the CPU count) to ``args.out``."""
    log = Path(args.out).with_suffix(".server.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with local_server(shlex.split(args.serve_args), log_path=log) as url:
        result = asyncio.run(measure(url, args))
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
