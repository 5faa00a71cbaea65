"""Extraction throughput: constrained vs. free decoding, one request at a time vs. concurrent,
same texts (WNUT-17) and same server, one run.

    .venv/bin/python benchmarks/bench_extract.py [--docs 32] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from ie_service.evaluation.datasets import labels_of, load
from ie_service.local_server import local_server


async def run(url: str, texts: list[str], schema: list[str], constrained: bool, concurrency: int,
              max_tokens: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    stats = {"docs": 0, "output_tokens": 0, "truncated": 0, "unparseable": 0, "entities": 0}
    async with httpx.AsyncClient(timeout=900) as client:
        async def one(text: str) -> None:
            async with sem:
                r = await client.post(f"{url}/extract/ner", json={
                    "text": text, "schema": schema, "constrained": constrained,
                    "parameters": {"max_tokens": max_tokens}})
            r.raise_for_status()
            body = r.json()
            stats["docs"] += 1
            stats["entities"] += len(body["entities"])
            for k in ("output_tokens", "truncated", "unparseable"):
                stats[k] += body["stats"][k]

        t = time.perf_counter()
        await asyncio.gather(*(one(x) for x in texts))
        stats["seconds"] = round(time.perf_counter() - t, 2)
    stats["docs_per_s"] = round(stats["docs"] / stats["seconds"], 3)
    stats["out_tok_per_s"] = round(stats["output_tokens"] / stats["seconds"], 1)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--out", default="benchmarks/results/extract.json")
    args = ap.parse_args()
    docs = load("wnut17")
    schema = labels_of(docs, "ner")
    texts = [d.text for d in docs[: args.docs]]
    results = {}
    with local_server([]) as url:
        asyncio.run(run(url, texts[:2], schema, True, 2, args.max_tokens))  # warm-up, grammar compile
        for constrained in (True, False):
            for conc in (1, args.concurrency):
                name = f"{'constrained' if constrained else 'free'} c={conc}"
                results[name] = asyncio.run(run(url, texts, schema, constrained, conc, args.max_tokens))
                print(name, json.dumps(results[name]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
