"""Throughput of /generate vs. raw vLLM offline vs. transformers sequential generate (the
KnowLM reference scripts' way), on the same prompts, like with like:

* the service gets as many concurrent clients as raw vLLM gets prompts at once
  (``--concurrency``, default: the prompt count; below it, raw vLLM runs in waves of that
  size), with the same engine arguments (dtype, KV cache size, structured-output backend);
* free and JSON-constrained decoding on the same prompts, for both (goal: constrained at
  most 10% slower in tokens/s);
* the machine's CPU flags and NUMA layout are printed and saved with every result.

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

from ie_service.models.embedded import ensure_embedded_model
from ie_service.engine.host import read_host
from ie_service.local_server import local_server

TOPICS = ["the sea", "a library", "mountains", "a robot", "coffee", "winter", "a train", "the moon"]
SCHEMA = {  # what "constrained" means here: a small object, like extraction answers
    "type": "object",
    "properties": {"topic": {"type": "string", "maxLength": 40}, "paragraph": {"type": "string"}},
    "required": ["topic", "paragraph"],
    "additionalProperties": False,
}
GOAL = 0.90  # constrained tokens/s at least 90% of free


def instructions(n: int) -> list[str]:
    return [f"Write a short paragraph about {TOPICS[i % len(TOPICS)]} (variant {i})." for i in range(n)]


async def bench_service(url: str, prompts: list[str], max_tokens: int, concurrency: int,
                        schema: dict | None) -> dict:
    sem = asyncio.Semaphore(concurrency)
    params = {"temperature": 0, "max_tokens": max_tokens}
    extra = {"json_schema": schema} if schema is not None else {}
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(p: str) -> int:
            async with sem:
                r = await client.post(f"{url}/generate", json={"instruction": p, "parameters": params, **extra})
                r.raise_for_status()
                return r.json()["num_output_tokens_cf"]
        await one(prompts[0])  # warm-up (and the grammar compiled once)
        t = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one(p) for p in prompts)))
        return {"tokens": tokens, "seconds": time.perf_counter() - t}


def bench_vllm_offline(model: str, prompts: list[str], max_tokens: int, dtype: str, concurrency: int,
                       kv_cache_gib: float | None) -> dict[str, dict]:
    """Free and constrained, the engine built with the service's own arguments."""
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from ie_service.engine.backend import is_cpu_backend
    from ie_service.engine.start_plan import engine_kwargs
    from ie_service.engine.config import EngineConfig

    config = EngineConfig(model=model, dtype=dtype, kv_cache_gib=kv_cache_gib)
    llm = LLM(**engine_kwargs(config, model, on_cpu=is_cpu_backend()))
    tok = llm.get_tokenizer()
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                     add_generation_prompt=True) for p in prompts]
    out = {}
    for name, structured in (("free", None), ("constrained", StructuredOutputsParams(json=SCHEMA))):
        sp = SamplingParams(temperature=0, max_tokens=max_tokens, structured_outputs=structured)
        llm.generate(texts[:1], sp, use_tqdm=False)  # warm-up
        tokens, t = 0, time.perf_counter()
        for i in range(0, len(texts), concurrency):  # waves of the service's concurrency
            outs = llm.generate(texts[i:i + concurrency], sp, use_tqdm=False)
            tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        out[name] = {"tokens": tokens, "seconds": time.perf_counter() - t}
    del llm
    return out


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


def concrete_dtype(dtype: str, host) -> str:
    """One dtype for all three: ``auto`` → bfloat16 with native bf16, else float32."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if host.native_bf16 else "float32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--transformers-prompts", type=int, default=8,
                    help="sequential generate is slow: time it on fewer prompts (rate is per token); "
                         "0 skips it")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=None,
                    help="concurrent service clients = raw vLLM prompts per batch (default: --prompts)")
    ap.add_argument("--dtype", default="auto",
                    help="same for all three; auto: bfloat16 with AVX512-BF16/AMX, else float32")
    ap.add_argument("--kv-cache-gib", type=float, default=None,
                    help="KV cache per worker for both engines (default: the service's own sizing)")
    ap.add_argument("--out", default="benchmarks/results/generate.json")
    args = ap.parse_args()

    host = read_host()
    dtype = concrete_dtype(args.dtype, host)
    concurrency = args.concurrency or args.prompts
    model = str(ensure_embedded_model())
    prompts = instructions(args.prompts)
    print(host.describe(), flush=True)
    results: dict[str, dict] = {}
    serve_args = ["--model", model, "--dtype", dtype]
    if args.kv_cache_gib:
        serve_args += ["--kv-cache-gib", str(args.kv_cache_gib)]
    with local_server(serve_args) as url:
        for name, schema in (("free", None), ("constrained", SCHEMA)):
            results[f"service /generate {name}"] = asyncio.run(
                bench_service(url, prompts, args.max_tokens, concurrency, schema))
    raw = bench_vllm_offline(model, prompts, args.max_tokens, dtype, concurrency, args.kv_cache_gib)
    for name, r in raw.items():
        results[f"vLLM offline {name}"] = r
    if args.transformers_prompts:
        results["transformers sequential generate"] = bench_transformers(
            model, prompts[: args.transformers_prompts], args.max_tokens, dtype)

    for r in results.values():
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    base = results.get("transformers sequential generate", {}).get("tokens_per_s")
    print(f"\n{args.prompts} prompts, {args.max_tokens} new tokens each, concurrency {concurrency}, {dtype}")
    print(f"{'method':36} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'vs transformers':>16}")
    for name, r in results.items():
        if base:
            r["ratio_vs_transformers"] = r["tokens_per_s"] / base
        vs = f"{r['ratio_vs_transformers']:15.1f}x" if base else f"{'-':>16}"
        print(f"{name:36} {r['tokens']:7d} {r['seconds']:8.1f} {r['tokens_per_s']:8.1f} {vs}")

    rate = {name: r["tokens_per_s"] for name, r in results.items()}
    ratios = {
        "service / raw vLLM, free": rate["service /generate free"] / rate["vLLM offline free"],
        "service / raw vLLM, constrained": rate["service /generate constrained"] / rate["vLLM offline constrained"],
        "constrained / free, service": rate["service /generate constrained"] / rate["service /generate free"],
        "constrained / free, raw vLLM": rate["vLLM offline constrained"] / rate["vLLM offline free"],
    }
    print()
    for name, value in ratios.items():
        goal = ""
        if name.startswith("constrained"):
            goal = "  (goal >= 0.90: " + ("met)" if value >= GOAL else "missed)")
        print(f"{name:36} {value:.2f}{goal}")
    print("\n" + host.describe())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "dtype": dtype, "concurrency": concurrency,
                                          "host": host.as_dict(), "results": results, "ratios": ratios},
                                         indent=2))


if __name__ == "__main__":
    main()
