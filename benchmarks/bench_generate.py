"""Throughput of /generate under concurrency vs. raw vLLM offline vs. transformers
sequential generate (the KnowLM reference scripts' way), on the same prompts, one run.

    .venv/bin/python benchmarks/bench_generate.py [--prompts 32] [--max-tokens 64]

Reports output tokens/s and ratios. Runs the phases one after another so they do not
share the CPU. (A benchmark may import vllm directly: raw vLLM is what it compares with.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from ie_service.embedded import ensure_embedded_model
from ie_service.testing import running_server

TOPICS = ["the sea", "a library", "mountains", "a robot", "coffee", "winter", "a train", "the moon"]


def instructions(n: int) -> list[str]:
    return [f"Write a short paragraph about {TOPICS[i % len(TOPICS)]} (variant {i})." for i in range(n)]


async def bench_service(url: str, prompts: list[str], max_tokens: int, concurrency: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    params = {"temperature": 0, "max_tokens": max_tokens}
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(p: str) -> int:
            async with sem:
                r = await client.post(f"{url}/generate", json={"instruction": p, "parameters": params})
                r.raise_for_status()
                return r.json()["num_output_tokens_cf"]
        await one(prompts[0])  # warm-up
        t = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one(p) for p in prompts)))
        return {"tokens": tokens, "seconds": time.perf_counter() - t}


def bench_vllm_offline(model: str, prompts: list[str], max_tokens: int, dtype: str) -> dict:
    from vllm import LLM, SamplingParams

    from ie_service.engine import default_memory_utilization

    llm = LLM(model=model, dtype=dtype, max_model_len=2048, enforce_eager=True,
              gpu_memory_utilization=default_memory_utilization(on_cpu=True))
    tok = llm.get_tokenizer()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    sp = SamplingParams(temperature=0, max_tokens=max_tokens)
    llm.generate(texts[:1], sp)
    t = time.perf_counter()
    outs = llm.generate(texts, sp)
    seconds = time.perf_counter() - t
    del llm
    return {"tokens": sum(len(o.outputs[0].token_ids) for o in outs), "seconds": seconds}


def bench_transformers(model: str, prompts: list[str], max_tokens: int, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).eval()
    tokens, t = 0, time.perf_counter()
    for p in prompts:
        text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = lm.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    return {"tokens": tokens, "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--transformers-prompts", type=int, default=8,
                    help="sequential generate is slow: time it on fewer prompts (rate is per token)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--dtype", default="float32", help="same for all three (float32 on AVX2 CPUs)")
    ap.add_argument("--out", default="benchmarks/results/generate.json")
    args = ap.parse_args()

    model = str(ensure_embedded_model())
    prompts = instructions(args.prompts)
    results = {}
    with running_server(["--model", model, "--dtype", args.dtype]) as url:
        results["service /generate (concurrent)"] = asyncio.run(
            bench_service(url, prompts, args.max_tokens, args.concurrency))
    results["vLLM offline LLM.generate"] = bench_vllm_offline(model, prompts, args.max_tokens, args.dtype)
    results["transformers sequential generate"] = bench_transformers(
        model, prompts[: args.transformers_prompts], args.max_tokens, args.dtype)

    base = None
    print(f"{'method':36} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'vs transformers':>16}")
    for name, r in results.items():
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    base = results["transformers sequential generate"]["tokens_per_s"]
    for name, r in results.items():
        r["ratio_vs_transformers"] = r["tokens_per_s"] / base
        print(f"{name:36} {r['tokens']:7d} {r['seconds']:8.1f} {r['tokens_per_s']:8.1f} "
              f"{r['ratio_vs_transformers']:15.1f}x")
    svc = results["service /generate (concurrent)"]["tokens_per_s"]
    raw = results["vLLM offline LLM.generate"]["tokens_per_s"]
    print(f"service / raw vLLM offline = {svc / raw:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
