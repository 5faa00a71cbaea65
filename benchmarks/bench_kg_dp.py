"""``kg build`` throughput against one engine vs. vLLM data parallel 2, side by side in one run.

Four phases, one after another on the same documents (each its own fresh output file and
server): ``--data-parallel-size 1`` and ``2``, each with the default concurrency
(``PER_REPLICA`` per replica) and with the other one's, so replicas and requests in flight are
told apart. The machine's CPU shape is saved with the result.

    .venv/bin/python benchmarks/bench_kg_dp.py [--docs 96] [--max-tokens 128]

On this project's 2-core machines a single engine binds its worker to one core and leaves the
other to the front end (vLLM's default); two replicas take one core each and share them with
the front end, so the ratio is a floor for hosts with cores or GPUs to spare.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from ie_service.engine.host import read_host
from ie_service.kg.build import PER_REPLICA, Document, build
from ie_service.local_server import local_server

COMPANIES = ["Microsoft", "Apple", "Amazon", "Tesla", "Siemens", "Nokia", "Sony", "Airbus", "Philips",
             "Ericsson", "Spotify", "Lenovo"]
PEOPLE = ["Bill Gates", "Steve Jobs", "Jeff Bezos", "Elon Musk", "Werner von Siemens", "Fredrik Idestam",
          "Masaru Ibuka", "Henri Ziegler", "Gerard Philips", "Lars Magnus Ericsson", "Daniel Ek", "Liu Chuanzhi"]
CITIES = ["Albuquerque", "Cupertino", "Seattle", "Austin", "Berlin", "Tampere", "Tokyo", "Toulouse",
          "Eindhoven", "Stockholm", "Beijing", "Espoo"]


def documents(n: int, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        c, p, city = rng.choice(COMPANIES), rng.choice(PEOPLE), rng.choice(CITIES)
        out.append(Document(id=f"d{i}", text=f"{c} was founded by {p} in {city}, where it is still located."))
    return out


def phase(name: str, dp: int, concurrency: int | None, docs: list[Document], request: dict, logs: Path) -> dict:
    with local_server(["--data-parallel-size", str(dp)], log_path=logs / f"{name}.log") as url:
        out = logs / f"{name}.jsonl"
        start = time.perf_counter()
        counts = build(url, docs, request, out, concurrency=concurrency)
        seconds = time.perf_counter() - start
    assert counts["docs"] == len(docs) and not counts["failed"], counts
    row = {"phase": name, "data_parallel_size": dp, "concurrency": counts["concurrency"],
           "docs": counts["docs"], "triples": counts["triples"], "seconds": round(seconds, 2),
           "docs_per_s": round(len(docs) / seconds, 3)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=96)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/kg_dp.json")
    args = ap.parse_args()
    docs = documents(args.docs)
    request = {"schema": ["founded by", "located in"], "constrained": True, "language": "en",
               "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    host = read_host()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        rows = [phase("dp1", 1, None, docs, request, logs),
                phase(f"dp1-at-{2 * PER_REPLICA}", 1, 2 * PER_REPLICA, docs, request, logs),
                phase("dp2", 2, None, docs, request, logs),
                phase(f"dp2-at-{PER_REPLICA}", 2, PER_REPLICA, docs, request, logs)]
    base = rows[0]["docs_per_s"]
    print(f"\n{'phase':10} {'DP':>3} {'in flight':>9} {'docs/s':>8} {'vs DP 1':>8}")
    for r in rows:
        r["ratio_vs_dp1"] = round(r["docs_per_s"] / base, 2)
        print(f"{r['phase']:10} {r['data_parallel_size']:>3} {r['concurrency']:>9} {r['docs_per_s']:>8.3f} "
              f"{r['ratio_vs_dp1']:>7.2f}x")
    Path(args.out).write_text(json.dumps({"host": host.as_dict(), "args": vars(args), "rows": rows}, indent=1))
    print(f"\nhost: {host.describe()}\nsaved {args.out}")


if __name__ == "__main__":
    main()
