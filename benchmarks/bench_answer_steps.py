"""Decode steps per answer, and how many of them the grammar forces (issue 21 #4).

For the gold answers of the first N WNUT-17 sentences (the exact JSON the adapter was trained
to write, 6 labels per prompt), tokenized with the served tokenizer: steps per answer, steps
where the grammar allows exactly one token (forced: a jump-forward decoder would skip them;
vLLM 0.32 spends a full decode step on each), and steps spent on labels left empty, under
the JSON-schema grammar and the grounded grammar, for the full answer shape (every label a
key: what adapter v2 writes) and the compact one (only labels with spans: issue 28).

    python benchmarks/bench_answer_steps.py [--docs 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import xgrammar as xgr
from transformers import AutoTokenizer

from ie_service.evaluation.datasets import labels_of, load
from ie_service.extraction.grounded_grammar import grounded_grammar
from ie_service.extraction.tasks import TASKS


def steps(compiled: xgr.CompiledGrammar, ids: list[int], vocab: int) -> tuple[int, int]:
    """(steps, forced steps) of decoding ``ids`` (+ the stop token) under ``compiled``."""
    matcher = xgr.GrammarMatcher(compiled)
    mask = xgr.allocate_token_bitmask(1, vocab)
    forced = 0
    for tok in ids:
        matcher.fill_next_token_bitmask(mask)
        forced += xgr.testing._is_single_token_bitmask(mask, vocab)[0]
        if not matcher.accept_token(tok):
            return -1, -1
    return len(ids) + 1, forced


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    args = ap.parse_args()
    path = subprocess.run([sys.executable, "-m", "ie_service.cli", "prepare-model"], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    tok = AutoTokenizer.from_pretrained(path)
    info = xgr.TokenizerInfo.from_huggingface(tok)
    compiler = xgr.GrammarCompiler(info)
    ner = TASKS["ner"]
    all_docs = load("wnut17")
    group = ner.labels(labels_of(all_docs, "ner"))
    shapes = ("full", "compact")
    schemas = {shape: compiler.compile_json_schema(json.dumps(ner.json_schema(group, shape)), any_whitespace=False,
                                                   separators=(",", ":")) for shape in shapes}
    rows = {f"{grammar}, {shape}": [0, 0, 0] for shape in shapes for grammar in ("json schema", "grounded")}
    empty_steps = 0
    n = 0
    for doc in all_docs[: args.docs]:
        try:
            answers = {shape: ner.gold_answer(doc, group, shape) for shape in shapes}
        except Exception:
            continue
        for shape, answer in answers.items():
            text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
            ids = tok.encode(text, add_special_tokens=False)
            g = compiler.compile_grammar(grounded_grammar(ner.answer_grammar(group, shape), doc.text))
            for name, compiled in ((f"json schema, {shape}", schemas[shape]), (f"grounded, {shape}", g)):
                s, f = steps(compiled, ids, info.vocab_size)
                if s < 0:
                    rows[name][2] += 1
                    continue
                rows[name][0] += s
                rows[name][1] += f
        empty_steps += sum(len(tok.encode(json.dumps(k) + ":[],", add_special_tokens=False))
                           for k, v in answers["full"].items() if not v)
        n += 1
        if n % 10 == 0:
            print(f"{n} answers", {k: round(v[0] / n, 1) for k, v in rows.items()}, flush=True)
    print(f"{n} gold answers, {len(group)} labels per prompt; empty labels' keys: "
          f"{empty_steps / n:.1f} steps per answer")
    print("| grammar, answer shape | steps/answer | forced steps/answer | forced share | answers the grammar refuses |")
    print("|---|---|---|---|---|")
    for name, (s, f, bad) in rows.items():
        print(f"| {name} | {s / n:.1f} | {f / n:.1f} | {f / max(s, 1):.0%} | {bad} |")


if __name__ == "__main__":
    main()
