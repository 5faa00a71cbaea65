"""Grounded grammars: build and xgrammar compile time against chunk length.

Compiles each grammar with the served model's tokenizer (the embedded SmolLM2 by default),
as vLLM's engine core does, with xgrammar's cache off so every compile is measured.

    python benchmarks/bench_grounded_compile.py [--model PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import xgrammar as xgr
from transformers import AutoTokenizer

from ie_service.evaluation import datasets
from ie_service.extraction.grounded_grammar import grounded_grammar, span_rules, symbols
from ie_service.extraction.tasks import TASKS

LENGTHS = (100, 300, 1500, 4000)


def corpus(min_chars: int) -> str:
    """Real running text: CrossNER-ai test sentences joined (WNUT is tweets)."""
    out = ""
    for doc in datasets.load("crossner-ai"):
        out += doc.text + " "
        if len(out) > min_chars:
            return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = args.model or _embedded()
    tok = AutoTokenizer.from_pretrained(path)
    info = xgr.TokenizerInfo.from_huggingface(tok)
    compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    text = corpus(max(LENGTHS) + 100)
    ner = TASKS["ner"]
    group = ner.labels(["person", "organisation", "location", "algorithm", "field", "product"])
    record = ner.answer_grammar(group)
    rows = []
    for n in LENGTHS:
        chunk = text[:n].rsplit(" ", 1)[0]
        t0 = time.perf_counter()
        span_rules.cache_clear(); grounded_grammar.cache_clear()
        g = grounded_grammar(record, chunk)
        build = time.perf_counter() - t0
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            compiler.compile_grammar(g)
            times.append(time.perf_counter() - t0)
        schema = json.dumps(ner.json_schema(group))
        t0 = time.perf_counter()
        compiler.compile_json_schema(schema, any_whitespace=False, separators=(",", ":"))
        free = time.perf_counter() - t0
        rows.append({"chars": len(chunk), "symbols": len(symbols(chunk)), "grammar_bytes": len(g),
                     "build_ms": round(build * 1e3, 1), "compile_ms": round(statistics.median(times) * 1e3, 1),
                     "json_schema_compile_ms": round(free * 1e3, 1)})
        print(json.dumps(rows[-1]), flush=True)
    print("| chunk chars | symbols | grammar bytes | build (Python) ms | xgrammar compile ms | JSON-schema compile ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['chars']} | {r['symbols']} | {r['grammar_bytes']} | {r['build_ms']} | {r['compile_ms']} | {r['json_schema_compile_ms']} |")


def _embedded() -> str:
    import subprocess, sys
    return subprocess.run([sys.executable, "-m", "ie_service.cli", "prepare-model"], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    main()
