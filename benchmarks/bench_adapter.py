"""What the IE adapter costs: training speed on this machine, and extraction speed of the
merged default against the raw base.

1. ``fit``: a short LoRA run (same examples, same steps) in float32 and in bfloat16, each in
   its own process: training tokens/s and peak RSS.
2. ``extract``: the same N sentences through ``/extract/ner`` of a server on the merged
   default and one on ``embedded:base``, one after the other: sentences/s and output tokens.

    python benchmarks/bench_adapter.py --examples EXAMPLES.jsonl.gz [--steps 8] [--sentences 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from ie_service.evaluation import datasets
from ie_service.local_server import local_server
from ie_service.engine.host import read_host


def fit_run(examples: str, dtype: str, steps: int, batch: int) -> dict:
    """Run ``train fit`` in a child process, sampling its RSS; → tokens/s and peak RSS."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "ie_service.training.fit", "--examples", examples, "--out", out,
               "--max-steps", str(steps), "--batch-size", str(batch), "--dtype", dtype,
               "--snapshots", "1", "--dev-examples", "0"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss + sum(c.memory_info().rss for c in watched.children()))
            except psutil.Error:
                pass
            time.sleep(0.2)
        manifest = json.loads((Path(out) / "manifest.json").read_text())
    return {"dtype": dtype, "steps": manifest["steps"], "tokens": manifest["tokens_seen"],
            "train_seconds": manifest["train_seconds"], "tokens_per_s": manifest["tokens_per_second"],
            "peak_rss_gib": round(peak / 1024**3, 2)}


async def extract_all(url: str, texts: list[str], schema: list[str], concurrency: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    out_tokens = 0
    found = 0

    async with httpx.AsyncClient(timeout=600) as client:
        async def one(text: str) -> None:
            nonlocal out_tokens, found
            async with sem:
                r = await client.post(f"{url}/extract/ner", json={"text": text, "schema": schema})
            r.raise_for_status()
            body = r.json()
            out_tokens += body["stats"]["output_tokens"]
            found += len(body["entities"])

        t = time.perf_counter()
        await asyncio.gather(*(one(x) for x in texts))
        wall = time.perf_counter() - t
    return {"sentences": len(texts), "wall_s": round(wall, 1), "sentences_per_s": round(len(texts) / wall, 3),
            "output_tokens": out_tokens, "entities": found}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", required=True, help="examples file from `ie-service train data`")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--sentences", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--skip", choices=["fit", "extract"], default=None)
    p.add_argument("--out", default="benchmarks/results/adapter.json")
    args = p.parse_args()
    result: dict = {"host": read_host().describe(), "cpus": psutil.cpu_count()}
    if args.skip != "fit":
        result["fit"] = [fit_run(args.examples, d, args.steps, args.batch_size) for d in ("float32", "bfloat16")]
        print(json.dumps(result["fit"]))
    if args.skip != "extract":
        docs = datasets.load("wnut17")[: args.sentences]
        schema = datasets.labels_of(docs, "ner")
        result["extract"] = {}
        for model in ("embedded", "embedded:base"):
            with local_server(["--model", model], log_path=Path(tempfile.gettempdir()) / "bench-adapter.log") as url:
                result["extract"][model] = asyncio.run(extract_all(url, [d.text for d in docs], schema,
                                                                   args.concurrency))
            print(model, json.dumps(result["extract"][model]))
        base, merged = result["extract"]["embedded:base"], result["extract"]["embedded"]
        result["extract_ratio_merged_over_base"] = round(merged["sentences_per_s"] / base["sentences_per_s"], 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
