"""A bounded load generator for loopback tests and benchmarks: a fixed number of requests,
a concurrency cap and an overall deadline; every request's outcome is recorded."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import httpx

BODIES = [
    ("/generate", {"instruction": "Name a colour.", "parameters": {"temperature": 0, "max_tokens": 16}}),
    ("/extract/ner", {"text": "Barack Obama met Angela Merkel in Berlin.", "schema": ["person", "location"],
                      "parameters": {"max_tokens": 96}}),
    ("/extract/re", {"text": "Microsoft was founded by Bill Gates.", "schema": ["founded by"],
                     "parameters": {"max_tokens": 96}}),
]


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    lost: int = 0  # no HTTP answer at all (connection error, client timeout)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3)) if lat else (lambda q: None)
        return {"statuses": dict(sorted(self.statuses.items())), "lost": self.lost,
                "server_errors": self.server_errors, "seconds": round(self.seconds, 2),
                "p50_s": pct(0.5), "p95_s": pct(0.95),
                "mean_s": round(statistics.fmean(lat), 3) if lat else None}


async def run_load(url: str, requests: int, concurrency: int, deadline_s: float,
                   client_timeout_s: float = 300.0, api_key: str | None = None) -> LoadResult:
    result = LoadResult()
    sem = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    async with httpx.AsyncClient(timeout=client_timeout_s, headers=headers) as client:
        async def one(i: int) -> None:
            path, body = BODIES[i % len(BODIES)]
            async with sem:
                t = time.perf_counter()
                try:
                    r = await client.post(url + path, json=body)
                except httpx.HTTPError:
                    result.lost += 1
                    return
                result.latencies.append(time.perf_counter() - t)
                result.statuses[r.status_code] = result.statuses.get(r.status_code, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(requests))), timeout=deadline_s)
    result.seconds = time.perf_counter() - start
    return result
