"""What a run-time adapter costs: the same N WNUT-17 sentences through ``/extract/ner`` of a
server on the merged default and of one on the base with the shipped adapter applied at run
time (``--model embedded:base --lora ie=...``, ``"adapter": "ie"``), one after the other in one
run: output tokens/s and sentences/s side by side, and whether the answers agree.

    .venv/bin/python benchmarks/bench_lora.py [--sentences 32] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

from ie_service.models.embedded import ADAPTER_DIR
from ie_service.evaluation.datasets import labels_of, load
from ie_service.local_server import local_server


async def extract_all(url: str, texts: list[str], schema: list[str], concurrency: int,
                      adapter: str | None) -> tuple[dict, list[list[str]]]:
    sem = asyncio.Semaphore(concurrency)
    answers: list[list[str]] = [[] for _ in texts]
    tokens = 0
    async with httpx.AsyncClient(timeout=900) as client:
        async def one(i: int, text: str) -> None:
            nonlocal tokens
            body = {"text": text, "schema": schema, **({"adapter": adapter} if adapter else {})}
            async with sem:
                r = await client.post(f"{url}/extract/ner", json=body)
            r.raise_for_status()
            answers[i] = r.json()["raw_output"]
            tokens += r.json()["stats"]["output_tokens"]

        await one(0, texts[0])  # warm-up (grammar compile, first LoRA load)
        tokens = 0
        t = time.perf_counter()
        await asyncio.gather(*(one(i, x) for i, x in enumerate(texts)))
        seconds = time.perf_counter() - t
    return {"sentences": len(texts), "seconds": round(seconds, 2), "output_tokens": tokens,
            "output_tokens_per_s": round(tokens / seconds, 1),
            "sentences_per_s": round(len(texts) / seconds, 3)}, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    docs = load("wnut17")[: args.sentences]
    texts, schema = [d.text for d in docs], labels_of(docs, "ner")
    results, answers = {}, {}
    for name, flags, adapter in (("merged", [], None),
                                 ("runtime-lora", ["--model", "embedded:base", "--lora", f"ie={ADAPTER_DIR}"], "ie")):
        with local_server(flags) as url:
            results[name], answers[name] = asyncio.run(extract_all(url, texts, schema, args.concurrency, adapter))
    same = sum(a == b for a, b in zip(answers["merged"], answers["runtime-lora"]))
    ratio = results["merged"]["output_tokens_per_s"] / max(results["runtime-lora"]["output_tokens_per_s"], 1e-9)
    print(json.dumps({**results, "same_answers": f"{same}/{len(texts)}",
                      "merged_over_runtime_tokens_per_s": round(ratio, 2),
                      "concurrency": args.concurrency}, indent=1))


if __name__ == "__main__":
    main()
