"""The before / after table from two ``benchmarks/adapter_eval.sh`` output folders.

    python benchmarks/adapter_table.py BASE_DIR ADAPTER_DIR [--manifest ie_service/adapters/smollm2-ie/manifest.json]

Prints a Markdown table (micro P/R/F1, unparseable, truncated and ungrounded rates per set)
and, with ``--manifest``, stores the adapter's scores in the manifest under ``scores``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# report file stem → (row name, score kinds)
SETS = [
    ("wnut17-ner-constrained", "WNUT-17 test", ["entities"]),
    ("crossner-ai-ner-constrained", "CrossNER ai test", ["entities"]),
    ("crossner-music-ner-constrained", "CrossNER music test", ["entities"]),
    ("uner-zh-dev-ner-constrained", "UNER Chinese dev (zh)", ["entities"]),
    ("fewfc-ee-constrained", "FewFC test", ["triggers", "arguments"]),
    ("fewrel-dev-re-constrained", "FewRel held-out 10%, 12 trained relations", ["triples"]),
    ("fewrel-zeroshot-re-constrained", "FewRel 4 zero-shot relations", ["triples"]),
    ("phee-dev-ee-constrained", "PHEE dev", ["triggers", "arguments"]),
]


def row(folder: Path, stem: str) -> dict | None:
    path = folder / f"{stem}.report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    t = report["totals"]
    prompts = max(t["prompts"], 1)
    out = {"docs": t["docs"], "unparseable": t["parse_failure_rate"], "truncated": t["truncation_rate"],
           "ungrounded_per_prompt": round(t["ungrounded"] / prompts, 3)}
    for kind, scores in report["scores"].items():
        micro = scores["micro"]
        out[kind] = {k: round(micro[k], 3) for k in ("precision", "recall", "f1")}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base")
    p.add_argument("adapter")
    p.add_argument("--manifest", default=None)
    args = p.parse_args()
    lines = ["| set (never trained on) | scored | docs | base F1 | adapter P | adapter R | adapter F1 "
             "| unparseable | truncated |",
             "|---|---|---|---|---|---|---|---|---|"]
    scores = {}
    for stem, name, kinds in SETS:
        base, tuned = row(Path(args.base), stem), row(Path(args.adapter), stem)
        if tuned is None:
            continue
        scores[stem] = tuned
        for kind in kinds:
            b = f"{base[kind]['f1']:.3f}" if base and kind in base else "–"
            a = tuned.get(kind, {"precision": 0, "recall": 0, "f1": 0})
            lines.append(f"| {name} | {kind} | {tuned['docs']} | {b} | {a['precision']:.3f} | {a['recall']:.3f} "
                         f"| **{a['f1']:.3f}** | {tuned['unparseable']:.1%} | {tuned['truncated']:.1%} |")
    print("\n".join(lines))
    if args.manifest:
        path = Path(args.manifest)
        manifest = json.loads(path.read_text())
        manifest["scores"] = {"how": "benchmarks/adapter_eval.sh (served, constrained, default settings)",
                              "sets": scores}
        path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
