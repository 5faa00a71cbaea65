"""Baseline of a model on the public test sets: constrained vs. free decoding, zero-shot vs.
few-shot (hand-written examples in benchmarks/shots/, not from the test sets). One server,
all runs one after another; prints F1, parse failures, truncation and throughput side by side.
FewFC is scored on triggers, asked for without arguments (``eval --triggers-only``).

    .venv/bin/python benchmarks/baseline.py [--limit 300] [--fewfc-limit 100] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ie_service.local_server import local_server

HERE = Path(__file__).resolve().parent
RUNS = [  # dataset, task, scores key, extra eval flags
    ("wnut17", "ner", "entities", []),
    ("crossner-ai", "ner", "entities", []),
    ("fewfc", "ee", "triggers", ["--triggers-only"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--fewfc-limit", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--fewfc-max-tokens", type=int, default=512,
                    help="the small model fills the EE grammar: 5 types x 3 events x ~28 tokens")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--labels-per-prompt", type=int, default=16,
                    help="16 puts every label of these sets in one prompt (one prompt per sentence)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--datasets", nargs="*", default=[r[0] for r in RUNS])
    ap.add_argument("--out-dir", default="benchmarks/results/baseline")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    serve = ["--model", args.model] if args.model else []
    rows = []
    with local_server(serve, log_path=out / "server.log") as url:
        for dataset, task, key, extra in RUNS:
            if dataset not in args.datasets:
                continue
            limit = args.fewfc_limit if dataset == "fewfc" else args.limit
            max_tokens = args.fewfc_max_tokens if dataset == "fewfc" else args.max_tokens
            for free in (False, True):
                for shots in (False, True):
                    cmd = [sys.executable, "-m", "ie_service.cli", "eval", "--dataset", dataset, "--task", task,
                           "--limit", str(limit), "--url", url, "--out-dir", str(out),
                           "--max-tokens", str(max_tokens), "--concurrency", str(args.concurrency),
                           "--labels-per-prompt", str(args.labels_per_prompt), *extra]
                    cmd += ["--free"] if free else []
                    cmd += ["--examples", str(HERE / "shots" / f"{dataset}.json")] if shots else []
                    stem = out / f"{dataset}-{'free' if free else 'constrained'}-{2 if shots else 0}shot"
                    report_path = stem.with_suffix(".report.json")
                    cmd += ["--predictions", str(stem.with_suffix(".predictions.jsonl")), "--report", str(report_path)]
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                    report = json.loads(report_path.read_text())
                    t = report["totals"]
                    micro = report["scores"][key]["micro"]
                    rows.append({
                        "dataset": dataset, "scored": key, "docs": t["docs"],
                        "decoding": "free" if free else "constrained", "shots": 2 if shots else 0,
                        "max_tokens": max_tokens,
                        "P": micro["precision"], "R": micro["recall"], "F1": micro["f1"],
                        "parse_fail": t["parse_failure_rate"], "truncated": t["truncation_rate"],
                        "ungrounded": t["ungrounded"],
                        "docs_per_s": t["docs_per_s_this_run"],
                        "out_tok_per_s": round(t["output_tokens"] / t["wall_seconds_this_run"], 1)
                        if t["docs_this_run"] else None,
                    })
                    print(json.dumps(rows[-1]), flush=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    cols = ["dataset", "scored", "docs", "decoding", "shots", "max_tokens", "P", "R", "F1", "parse_fail", "truncated",
            "ungrounded", "docs_per_s", "out_tok_per_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
