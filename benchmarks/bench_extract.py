"""Extraction throughput through the service, settings side by side in one run (issue 28),
and where a sentence's time goes.

The same WNUT-17 test sentences (the set's own 6 labels, one prompt each) through
``/extract/ner`` of one server per setting, started one after the other (never two engines
at once on a small host). Default settings: ``--block-size 128`` (vLLM's CPU default: what
``serve`` used before issue 28) and the server's defaults now (32 on the CPU backend).

Per setting:

- N in flight over ``--docs`` sentences: sentences/s, output tokens/s, p50/p95 latency, micro
  F1, and the prefix-cache hit rate (share of prompt tokens the cache supplied, from the
  server's ``ie_prefix_cache_*`` counters in ``/metrics``);
- one in flight over ``--serial-docs`` sentences, the cost breakdown per sentence: new and
  cached prompt tokens, decode steps, engine seconds (``stats.engine_seconds``) against
  latency (the rest is service overhead: HTTP, rendering, parsing), the prefill part (as many
  other sentences with ``max_tokens`` 1) and the grammar part (as many others unconstrained,
  per decode step). These sentences come after the first ``--docs``: a sentence sent before
  would be found in the prefix cache whole.

Greedy outputs of the N-in-flight runs are compared with the first setting's.

    python benchmarks/bench_extract.py [--docs 200] [--serial-docs 40] [--concurrency 16]
        [--setting 'name=serve args' ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import statistics
import time
from pathlib import Path

import httpx

from ie_service.evaluation.datasets import labels_of, load
from ie_service.evaluation.scoring import Scorer
from ie_service.extraction.tasks import TASKS
from ie_service.local_server import local_server

NER = TASKS["ner"]
DEFAULT_SETTINGS = ["block 128 (before)=--block-size 128", "server default (block 32 on CPU)="]


async def run(url: str, docs: list, schema: list[str], concurrency: int, **request) -> dict:
    """Every doc through /extract/ner, ``concurrency`` at a time; summed stats and latencies."""
    sem = asyncio.Semaphore(concurrency)
    totals = {"docs": 0, "prompts": 0, "output_tokens": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0,
              "engine_seconds": 0.0, "truncated": 0, "ungrounded": 0}
    latencies: list[float] = []
    raw: dict[str, list[str]] = {}
    scorer = Scorer()
    async with httpx.AsyncClient(timeout=900) as client:
        async def one(doc) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(f"{url}/extract/ner", json={"text": doc.text, "schema": schema, **request})
                latencies.append(time.perf_counter() - t)
            r.raise_for_status()
            body = r.json()
            totals["docs"] += 1
            for k in totals:
                if k != "docs":
                    totals[k] += body["stats"][k]
            raw[doc.id] = body["raw_output"]
            scorer.add(NER.gold_tuples(doc)["entities"], NER.predicted_tuples(body)["entities"])

        t = time.perf_counter()
        await asyncio.gather(*(one(d) for d in docs))
        seconds = time.perf_counter() - t
    latencies.sort()
    micro = scorer.report()["micro"]
    return {**totals, "seconds": seconds, "latency_sum": sum(latencies),
            "sent_per_s": totals["docs"] / seconds, "out_tok_per_s": totals["output_tokens"] / seconds,
            "p50_s": statistics.median(latencies),
            "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "F1": micro["f1"], "raw": raw}


def prefix_counters(url: str) -> tuple[float, float]:
    """(prompt tokens looked up, found) summed over tasks, from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = {"queries": 0.0, "hits": 0.0}
    for kind in total:
        for m in re.finditer(rf"^ie_prefix_cache_{kind}_total\{{[^}}]*\}} ([0-9.e+]+)$", text, re.M):
            total[kind] += float(m.group(1))
    return total["queries"], total["hits"]


def measure(url: str, docs: list, serial: list[list], schema: list[str], concurrency: int, max_tokens: int) -> dict:
    """``serial``: four disjoint sets of sentences none of ``docs`` holds (a sentence seen before
    would come from the prefix cache whole): warm-up, breakdown, prefill, unconstrained."""
    warm, serial, serial_prefill, serial_free = serial
    asyncio.run(run(url, warm, schema, 4, parameters={"max_tokens": max_tokens}))  # warm-up, grammar compile
    q0, h0 = prefix_counters(url)
    loaded = asyncio.run(run(url, docs, schema, concurrency, parameters={"max_tokens": max_tokens}))
    q1, h1 = prefix_counters(url)
    loaded["hit_rate"] = (h1 - h0) / max(q1 - q0, 1)
    one = asyncio.run(run(url, serial, schema, 1, parameters={"max_tokens": max_tokens}))
    prefill = asyncio.run(run(url, serial_prefill, schema, 1, parameters={"max_tokens": 1}))
    free = asyncio.run(run(url, serial_free, schema, 1, constrained=False, parameters={"max_tokens": max_tokens}))
    n = len(serial)
    step = (one["engine_seconds"] - prefill["engine_seconds"]) / max(one["output_tokens"] - n, 1)
    free_step = (free["engine_seconds"] - prefill["engine_seconds"]) / max(free["output_tokens"] - n, 1)
    breakdown = {
        "new_prompt_tokens": (one["prompt_tokens"] - one["cached_prompt_tokens"]) / n,
        "cached_prompt_tokens": one["cached_prompt_tokens"] / n,
        "decode_steps": one["output_tokens"] / n,
        "latency_s": one["latency_sum"] / n,
        "engine_s": one["engine_seconds"] / n,
        "prefill_s": prefill["engine_seconds"] / n,
        "decode_s": (one["engine_seconds"] - prefill["engine_seconds"]) / n,
        "decode_step_ms": 1000 * step,
        "grammar_share_of_step": (step - free_step) / step if step > 0 else 0.0,
        "service_overhead_s": (one["latency_sum"] - one["engine_seconds"]) / n,
    }
    return {"loaded": loaded, "breakdown": breakdown}


def table(results: dict[str, dict], concurrency: int) -> str:
    names = list(results)
    base = results[names[0]]["loaded"]
    rows = [f"| setting | sent/s ({concurrency} in flight) | × first | out tok/s | p50 s | p95 s | F1 | "
            f"greedy equal | prefix-cache hits |", "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        r = results[name]["loaded"]
        same = sum(r["raw"][k] == base["raw"][k] for k in base["raw"])
        rows.append(f"| {name} | {r['sent_per_s']:.2f} | {r['sent_per_s'] / base['sent_per_s']:.2f} | "
                    f"{r['out_tok_per_s']:.0f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['F1']:.3f} | "
                    f"{same}/{len(base['raw'])} | {r['hit_rate']:.0%} |")
    rows += ["", "Per sentence, one in flight:", "",
             "| setting | new prompt tok | cached prompt tok | decode steps | latency s | engine s | "
             "prefill s | decode s | ms/step | grammar share of a step | service overhead s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        b = results[name]["breakdown"]
        rows.append(f"| {name} | {b['new_prompt_tokens']:.1f} | {b['cached_prompt_tokens']:.1f} | "
                    f"{b['decode_steps']:.1f} | {b['latency_s']:.3f} | {b['engine_s']:.3f} | {b['prefill_s']:.3f} | "
                    f"{b['decode_s']:.3f} | {b['decode_step_ms']:.1f} | {b['grammar_share_of_step']:.0%} | "
                    f"{b['service_overhead_s']:.3f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200, help="sentences for the N-in-flight run")
    ap.add_argument("--serial-docs", type=int, default=40, help="sentences for the one-in-flight breakdown")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--setting", action="append", default=None, metavar="NAME=SERVE ARGS",
                    help=f"a server to measure, repeatable, the first is the reference (default: {DEFAULT_SETTINGS})")
    ap.add_argument("--out", default="benchmarks/results/extract.json")
    args = ap.parse_args()
    all_docs = load("wnut17")
    schema = labels_of(all_docs, "ner")
    docs, rest, k = all_docs[: args.docs], all_docs[args.docs:], args.serial_docs
    serial = [rest[:4], *(rest[4 + i * k: 4 + (i + 1) * k] for i in range(3))]
    log_dir = Path(args.out).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for i, setting in enumerate(args.setting or DEFAULT_SETTINGS):
        name, _, serve_args = setting.partition("=")
        with local_server(shlex.split(serve_args), log_path=log_dir / f"extract-server-{i}.log") as url:
            results[name] = measure(url, docs, serial, schema, args.concurrency, args.max_tokens)
        print(name, json.dumps({"loaded": {k: v for k, v in results[name]["loaded"].items() if k != "raw"},
                                "breakdown": results[name]["breakdown"]}), flush=True)
    print(table(results, args.concurrency))
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
