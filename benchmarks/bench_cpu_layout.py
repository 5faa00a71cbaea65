"""How the CPU engine spends its cores, side by side in one run (issues 20 and 21).

vLLM's CPU backend keeps one core per local worker for the engine core process (the
scheduler, which also fills the grammar masks) and runs the model's OpenMP threads on the
rest: on a 2-core host the model gets **one** core. Each setting below is one
``ie-service serve`` of the embedded default; for each:

* throughput: grounded ``/extract/ner`` on WNUT-17 sentences (the set's 6 labels) at N
  and at 1 in flight: sentences/s, p50/p95, micro F1, and the greedy outputs compared
  with the first setting's;
* fair share: a 4-token ``/generate`` idle (p50/p95), then again while one heavy
  ``/extract/ner`` (a long text, many prompts) runs: p50/p95 and the p95 against idle.

    flock /tmp/engine.lock .venv/bin/python benchmarks/bench_cpu_layout.py [--docs 48]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import run  # noqa: E402
from fault_probe import SMALL, heavy_text, pct, small_series, timed  # noqa: E402

from ie_service.evaluation.datasets import labels_of, load  # noqa: E402
from ie_service.local_server import local_server  # noqa: E402

# ie-service sets VLLM_CPU_NUM_OF_RESERVED_CPU=0 itself on small hosts (vllm_engine.SMALL_HOST_CPUS):
# "1" is vLLM's own default for one worker
SETTINGS = {
    "vLLM default (a core kept for the engine core)": ([], {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}),
    "every core for the model": ([], {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
    "every core, 512-token steps": (["--max-num-batched-tokens", "512"], {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}),
}


async def fair_share(url: str, chars: int, deadline: float) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await small_series(client, 2)
        idle = await small_series(client, 10)
        heavy = asyncio.create_task(timed(client, "POST", "/extract/ner", timeout=deadline,
                                          json={"text": heavy_text(chars), "schema": ["person", "location"]}))
        beside: list[float] = []
        await asyncio.sleep(1.0)
        while not heavy.done():
            status, s = await timed(client, "POST", "/generate", json=SMALL, timeout=deadline)
            if status == 200:
                beside.append(s)
        status, seconds = heavy.result()
    out = {"idle_p50_s": round(pct(idle, 0.5), 3), "idle_p95_s": round(pct(idle, 0.95), 3),
           "heavy_status": status, "heavy_s": round(seconds, 1), "beside_n": len(beside),
           "beside_p50_s": round(pct(beside, 0.5), 3), "beside_p95_s": round(pct(beside, 0.95), 3)}
    if beside and idle:
        out["p95_vs_idle"] = round(out["beside_p95_s"] / out["idle_p95_s"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--serial-docs", type=int, default=12)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--heavy-chars", type=int, default=40_000)
    ap.add_argument("--only", action="append", default=None, help="run only the settings named (repeatable)")
    ap.add_argument("--out", default="benchmarks/results/cpu_layout.json")
    args = ap.parse_args()
    docs = load("wnut17")
    schema = labels_of(docs, "ner")
    docs = docs[: args.docs]
    log_dir = Path(args.out).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    first_raw = None
    for name, (flags, env) in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        started = time.perf_counter()
        try:
            with local_server(flags, log_path=log_dir / f"cpu-layout-{len(results)}.log") as url:
                start_s = round(time.perf_counter() - started, 1)
                asyncio.run(run(url, docs[:4], schema, True, 4, 256))  # warm-up
                many = asyncio.run(run(url, docs, schema, True, args.concurrency, 256))
                one = asyncio.run(run(url, docs[: args.serial_docs], schema, True, 1, 256))
                share = asyncio.run(fair_share(url, args.heavy_chars, 900))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = v
        raw = many.pop("raw")
        one.pop("raw")
        if first_raw is None:
            first_raw = raw
        same = sum(raw.get(k) == v for k, v in first_raw.items())
        results[name] = {"start_s": start_s, f"c={args.concurrency}": many, "c=1": one, "fair_share": share,
                         "greedy_equal_to_first": f"{same}/{len(first_raw)}"}
        print(name, json.dumps(results[name]), flush=True)
    print(f"| setting | sent/s c={args.concurrency} | sent/s c=1 | p50 s c=1 | F1 | greedy = first | "
          "small p95 idle s | small p95 beside heavy s | × idle | heavy s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        m, o, f = r[f"c={args.concurrency}"], r["c=1"], r["fair_share"]
        print(f"| {name} | {m['sent_per_s']} | {o['sent_per_s']} | {o['p50_s']} | {m['F1']:.3f} | "
              f"{r['greedy_equal_to_first']} | {f['idle_p95_s']} | {f['beside_p95_s']} | "
              f"{f.get('p95_vs_idle')} | {f['heavy_s']} |")
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
