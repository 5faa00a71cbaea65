"""Load test on loopback: bounded count and time; reports statuses, 5xx, lost, latency.

    .venv/bin/python benchmarks/load_test.py [--requests 300 --concurrency 32 --max-outstanding 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from loadgen import run_load
from ie_service.local_server import local_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-outstanding", type=int, default=16)
    ap.add_argument("--deadline", type=float, default=1200)
    ap.add_argument("--out", default="benchmarks/results/load.json")
    args = ap.parse_args()
    with local_server(["--max-outstanding", str(args.max_outstanding)]) as url:
        result = asyncio.run(run_load(url, args.requests, args.concurrency, args.deadline))
    summary = {"args": vars(args), **result.summary()}
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
