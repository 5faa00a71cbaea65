"""Bulk-load throughput of the embedded graph stores against the plain file exports.

    .venv/bin/python benchmarks/bench_kg_load.py --triples 100000

Writes a seeded synthetic triples JSONL (the format ``kg build`` writes), then measures, each
in a fresh process (so peak RSS is that step's own): the exports ``turtle``, ``nt`` and
``neo4j-csv`` written to disk (the baseline), and ``kg load`` into ``oxigraph`` and
``ladybug`` (serialisation included: a store loads the project's own export; the column
"of which export" is that serialisation, ``to_rdf`` nt or ``to_cypher``, timed alone).
Reading the JSONL into a Graph (``load_graph``) is timed apart and left out of every figure."""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ["turtle", "nt", "neo4j-csv", "oxigraph", "ladybug"]
BASELINE = "nt"


def synthetic(path: Path, n: int, seed: int) -> None:
    """``n`` triples over ``n // 2`` entities, 25 relations, 10 triples a document; a few
    names with quotes, backslashes, CJK and emoji."""
    rng = random.Random(seed)
    extras = ['"q"', "\\", "北京", "🦀", "'=x", "<b>"]
    names = [f"Entity {i}" + (" " + rng.choice(extras) if i % 7 == 0 else "") for i in range(max(2, n // 2))]
    types = ["person", "organization", "location", None]
    relations = [f"relation {k}" for k in range(25)]
    with path.open("w", encoding="utf-8") as f:
        for d in range(0, n, 10):
            triples = []
            for _ in range(min(10, n - d)):
                h, t = rng.sample(range(len(names)), 2)
                triples.append({"head": {"text": names[h], "type": types[h % 4]}, "relation": rng.choice(relations),
                                "tail": {"text": names[t], "type": types[t % 4]}})
            f.write(json.dumps({"doc_id": f"doc-{d // 10}", "triples": triples}, ensure_ascii=False) + "\n")


def one(step: str, triples: Path, work: Path) -> dict:
    """Run one step here; its seconds and this process's peak RSS."""
    from ie_service.kg.graph import load_graph

    t0 = time.perf_counter()
    graph = load_graph(triples)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if step in ("turtle", "nt", "neo4j-csv"):
        from ie_service.kg.export import export

        out = work / {"turtle": "kg.ttl", "nt": "kg.nt", "neo4j-csv": "neo4j"}[step]
        export(graph, step, out)
        counts = None
        serialise_s = None
    else:
        from ie_service.kg.export import to_cypher, to_rdf
        from ie_service.kg.stores import StoreSpec, open_store

        to_rdf(graph, "nt") if step == "oxigraph" else to_cypher(graph)  # its input, timed alone
        serialise_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = open_store(StoreSpec(step, work / f"{step}.store"))
        counts = store.load(graph, progress=False).model_dump()
        store.close()
    seconds = time.perf_counter() - t0
    return {"step": step, "seconds": seconds, "serialise_s": serialise_s, "read_s": read_s, "edges": len(graph.edges),
            "entities": len(graph.entities), "counts": counts,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triples", type=int, default=100_000, help="synthetic triples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", nargs="+", default=STEPS, choices=STEPS)
    ap.add_argument("--one", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, Path(args.file), Path(args.work))))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        triples = work / "triples.jsonl"
        synthetic(triples, args.triples, args.seed)
        results = {}
        for step in args.steps:
            done = subprocess.run([sys.executable, __file__, "--one", step, "--file", str(triples),
                                   "--work", str(work)], capture_output=True, text=True, check=True)
            results[step] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {step}: {results[step]['seconds']:.1f} s", file=sys.stderr, flush=True)
    any_result = next(iter(results.values()))
    print(f"{args.triples} synthetic triples (seed {args.seed}): {any_result['entities']} entities, "
          f"{any_result['edges']} relations; load_graph {any_result['read_s']:.1f} s (not counted)")
    base = results.get(BASELINE)
    print(f"| step | kind | seconds | of which export | triples/s | time vs {BASELINE} write | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for step, r in results.items():
        kind = "store load" if step in ("oxigraph", "ladybug") else "file export"
        ratio = f"{r['seconds'] / base['seconds']:.2f}x" if base else "-"
        part = "-" if r["serialise_s"] is None else f"{r['serialise_s']:.2f}"
        print(f"| {step} | {kind} | {r['seconds']:.2f} | {part} | {args.triples / r['seconds']:,.0f} | {ratio} "
              f"| {r['peak_rss_mib']:.0f} |")
    for step, r in results.items():
        if r["counts"]:
            print(f"{step} holds {r['counts']}")


if __name__ == "__main__":
    main()
