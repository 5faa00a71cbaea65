"""Fair share, attributed (issue 31, item 5): a 4-token ``/generate`` beside the heaviest legal
``/extract/ner``, with the heavy request's grounded decoding on (the default: one grammar
compiled per chunk, in the API process) and off, side by side on one server; and where the
CPU went meanwhile: the API process (tokenizing, chunking, compiling grammars, parsing) against
the engine processes (vLLM's engine core and model workers).

    flock /tmp/engine.lock .venv/bin/python benchmarks/bench_fair_share.py [--serve-args '...']
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fault_probe puts the checkout on the path
from fault_probe import (HEAVY_LABELS, beside, engine_cores, heavy_text, pct, serve_and_run,  # noqa: E402
                         small_series)


def server_processes() -> tuple[psutil.Process, list[psutil.Process]]:
    """The API process (the engine core's parent) and its engine processes."""
    api = engine_cores()[0].parent()
    return api, api.children(recursive=True)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def run(url: str, args: argparse.Namespace) -> dict:
    api, engine = server_processes()
    out: dict = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await small_series(client, 3)  # warm-up
        idle = await small_series(client, args.small)
        out["idle"] = {"p50_s": round(pct(idle, 0.5), 3), "p95_s": round(pct(idle, 0.95), 3)}
        print("idle", out["idle"], flush=True)
        text = heavy_text(args.heavy_chars)
        for name, grounded in (("grounded", True), ("plain", False)):
            if name not in args.variants:
                continue
            api_cpu, engine_cpu = cpu_seconds([api]), cpu_seconds(engine)
            row = await beside(client, {"text": text, "schema": HEAVY_LABELS, "grounded": grounded},
                               "/extract/ner", args.deadline)
            row["api_cpu_s"] = round(cpu_seconds([api]) - api_cpu, 1)
            row["engine_cpu_s"] = round(cpu_seconds(engine) - engine_cpu, 1)
            if out["idle"]["p95_s"] and row["small_n"]:
                row["small_p95_vs_idle"] = round(row["small_p95_s"] / out["idle"]["p95_s"], 1)
            out[name] = row
            print(name, row, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=10, help="small requests for the idle figure")
    ap.add_argument("--deadline", type=float, default=600, help="seconds for each heavy request")
    ap.add_argument("--heavy-chars", type=int, default=110_000, help="the heavy request's text (6 labels)")
    ap.add_argument("--serve-args", default="", help="more arguments for the server")
    ap.add_argument("--variants", nargs="+", default=["grounded", "plain"], choices=["grounded", "plain"],
                    help="the heavy request with grounded decoding on, off")
    ap.add_argument("--out", default="benchmarks/results/fair_share.json")
    serve_and_run(ap.parse_args(), run)


if __name__ == "__main__":
    main()
