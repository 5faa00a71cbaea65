"""Extraction throughput and F1 through the service, side by side in one run (issue 21).

The same WNUT-17 sentences (the set's own 6 labels, one prompt each) through ``/extract/ner``
under each setting: today's behaviour (free-string spans under the JSON schema, engine
without preloaded libraries, vLLM's own core layout), grounded spans, the CPU stack as served
now (tcmalloc + Intel OpenMP preloaded; on a small host every core for the model), and both. Sentences/s, output tokens/s, p50/p95 latency at 1 and N requests in
flight, decode steps (output tokens) per answer, micro F1; greedy outputs compared between
engines with and without the preload. ``--raw`` adds offline ``vllm.LLM`` on the same
prompts as the reference (the service's prompt rendering, no HTTP).

    python benchmarks/bench_extract.py [--docs 200] [--serial-docs 40] [--concurrency 16] [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import httpx

from ie_service.evaluation.datasets import labels_of, load
from ie_service.evaluation.scoring import Scorer
from ie_service.extraction.tasks import TASKS
from ie_service.local_server import local_server

NER = TASKS["ner"]


async def run(url: str, docs: list, schema: list[str], grounded: bool, concurrency: int,
              max_tokens: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    stats = {"docs": 0, "prompts": 0, "output_tokens": 0, "truncated": 0, "unparseable": 0,
             "ungrounded": 0, "entities": 0}
    latencies: list[float] = []
    raw: dict[str, list[str]] = {}
    scorer = Scorer()
    async with httpx.AsyncClient(timeout=900) as client:
        async def one(doc) -> None:
            async with sem:
                t = time.perf_counter()
                r = await client.post(f"{url}/extract/ner", json={
                    "text": doc.text, "schema": schema, "grounded": grounded,
                    "parameters": {"max_tokens": max_tokens}})
                latencies.append(time.perf_counter() - t)
            r.raise_for_status()
            body = r.json()
            stats["docs"] += 1
            stats["entities"] += len(body["entities"])
            for k in ("prompts", "output_tokens", "truncated", "unparseable", "ungrounded"):
                stats[k] += body["stats"][k]
            raw[doc.id] = body["raw_output"]
            scorer.add(NER.gold_tuples(doc)["entities"], NER.predicted_tuples(body)["entities"])

        t = time.perf_counter()
        await asyncio.gather(*(one(d) for d in docs))
        seconds = time.perf_counter() - t
    latencies.sort()
    micro = scorer.report()["micro"]
    return {**stats, "seconds": round(seconds, 2),
            "sent_per_s": round(stats["docs"] / seconds, 3),
            "out_tok_per_s": round(stats["output_tokens"] / seconds, 1),
            "steps_per_answer": round(stats["output_tokens"] / max(stats["prompts"], 1), 1),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
            "P": micro["precision"], "R": micro["recall"], "F1": micro["f1"], "raw": raw}


def raw_reference(docs: list, schema: list[str], max_tokens: int) -> dict:
    """Offline ``vllm.LLM`` on the service's prompts, JSON schema (today's constraint)."""
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from ie_service.engine.embedded import resolve_embedded
    from ie_service.engine.prompt_formats import resolve_format
    from ie_service.extraction.extractor import render_prompt
    from ie_service.extraction.templates import TemplateRegistry

    path = str(resolve_embedded(None)[0])
    llm = LLM(path, max_model_len=2048, enforce_eager=True, kv_cache_memory_bytes=2 * 1024**3,
              structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True})
    fmt = resolve_format("auto", path, llm.get_tokenizer())
    template = TemplateRegistry.default().pick("ner", "en", None, True)
    group = NER.labels(schema)
    prompts = [render_prompt(fmt.render, template, NER, group, d.text) for d in docs]
    params = SamplingParams(temperature=0, max_tokens=max_tokens, structured_outputs=StructuredOutputsParams(
        json=NER.json_schema(group)))
    llm.generate(prompts[:2], params)  # warm-up, grammar compile
    t = time.perf_counter()
    outs = llm.generate(prompts, params)
    seconds = time.perf_counter() - t
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"docs": len(docs), "seconds": round(seconds, 2), "sent_per_s": round(len(docs) / seconds, 3),
            "out_tok_per_s": round(tokens / seconds, 1), "steps_per_answer": round(tokens / len(docs), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--serial-docs", type=int, default=40, help="sentences for the 1-in-flight runs")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--raw", action="store_true", help="also offline vllm.LLM (today's constraint)")
    ap.add_argument("--out", default="benchmarks/results/extract.json")
    args = ap.parse_args()
    all_docs = load("wnut17")
    schema = labels_of(all_docs, "ner")
    docs = all_docs[: args.docs]
    results: dict[str, dict] = {}
    log_dir = Path(args.out).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    for preload in ("0", "1"):
        os.environ["IE_SERVICE_PRELOAD"] = preload
        # "preload off" is today's main: no preload and vLLM's own core layout (one core kept
        # for the engine core); "on" is the CPU stack as served now (preload, and on a small
        # host every core for the model: vllm_engine.SMALL_HOST_CPUS)
        if preload == "0":
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "1"
        else:
            os.environ.pop("VLLM_CPU_NUM_OF_RESERVED_CPU", None)
        with local_server([], log_path=log_dir / f"extract-server-preload{preload}.log") as url:
            for grounded in (False, True):
                asyncio.run(run(url, docs[:4], schema, grounded, 4, args.max_tokens))  # warm-up
                for conc, part in ((args.concurrency, docs), (1, docs[: args.serial_docs])):
                    name = f"grounded={'on' if grounded else 'off'} preload={'on' if preload == '1' else 'off'} c={conc}"
                    results[name] = asyncio.run(run(url, part, schema, grounded, conc, args.max_tokens))
                    print(name, json.dumps({k: v for k, v in results[name].items() if k != "raw"}), flush=True)
    os.environ.pop("IE_SERVICE_PRELOAD")
    c = args.concurrency
    for g in ("off", "on"):
        a, b = results[f"grounded={g} preload=off c={c}"]["raw"], results[f"grounded={g} preload=on c={c}"]["raw"]
        same = sum(a[k] == b[k] for k in a)
        results[f"greedy equal grounded={g}"] = {"same": same, "of": len(a)}
        print(f"greedy outputs equal with/without preload, grounded={g}: {same}/{len(a)}", flush=True)
    if args.raw:
        results["raw vllm.LLM (json schema, preload as the shell has it)"] = raw_reference(docs, schema, args.max_tokens)
        print("raw", json.dumps(results["raw vllm.LLM (json schema, preload as the shell has it)"]), flush=True)
    base = results[f"grounded=off preload=off c={c}"]["sent_per_s"]
    print("| setting | in flight | sent/s | × today | out tok/s | steps/answer | p50 s | p95 s | P | R | F1 | ungrounded |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        if "sent_per_s" not in r or "c=" not in name:
            continue
        setting, conc = name.rsplit(" c=", 1)
        print(f"| {setting} | {conc} | {r['sent_per_s']} | {r['sent_per_s'] / base:.2f} | {r['out_tok_per_s']} | "
              f"{r['steps_per_answer']} | {r['p50_s']} | {r['p95_s']} | {r['P']:.3f} | {r['R']:.3f} | "
              f"{r['F1']:.3f} | {r['ungrounded']} |")
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
