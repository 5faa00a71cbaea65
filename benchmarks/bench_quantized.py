"""bf16 vs 4-bit (GPTQ / AWQ) of the same model, served by ``ie-service serve`` one after the
other in one run: batched output tokens/s (``--concurrency`` clients at once, greedy, fixed
length) and the peak RSS of the server's process tree (API process + engine core).

    .venv/bin/python benchmarks/bench_quantized.py --model BF16_DIR --quantized Q_DIR [Q_DIR ...]
        [--prompts 32 --concurrency 16 --max-tokens 64]

Make the 4-bit folder with ``ie-service weights quantize BF16_DIR --out Q_DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import psutil

from ie_service.local_server import local_server

TOPICS = ["the sea", "a library", "mountains", "a robot", "coffee", "winter", "a train", "the moon"]


def tree_rss(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRss:
    """Samples the RSS of every ``ie_service.cli serve`` tree on the port every 50 ms."""

    def __init__(self, port: str) -> None:
        self.port, self.peak, self._stop = port, 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _servers(self) -> list[int]:
        out = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info["cmdline"] or []
            if "serve" in cmd and "--port" in cmd and self.port in cmd:
                out.append(p.info["pid"])
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(tree_rss(pid) for pid in self._servers()))
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        return self.peak


async def run_batch(url: str, n: int, concurrency: int, max_tokens: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    params = {"temperature": 0, "max_tokens": max_tokens}
    async with httpx.AsyncClient(timeout=900) as client:
        async def one(i: int) -> int:
            async with sem:
                r = await client.post(f"{url}/generate", json={
                    "instruction": f"Write a short paragraph about {TOPICS[i % len(TOPICS)]} (variant {i}).",
                    "parameters": params})
                r.raise_for_status()
                return r.json()["num_output_tokens_cf"]
        await one(0)  # warm-up
        t = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one(i) for i in range(n))))
        return {"tokens": tokens, "seconds": round(time.perf_counter() - t, 2)}


def measure(model: str, args: argparse.Namespace, log: Path) -> dict:
    with local_server(["--model", model, "--max-num-seqs", str(args.concurrency)], log_path=log) as url:
        sampler = PeakRss(url.rsplit(":", 1)[1])
        result = asyncio.run(run_batch(url, args.prompts, args.concurrency, args.max_tokens))
        peak = sampler.stop()
    result.update(model=model, tokens_per_s=round(result["tokens"] / result["seconds"], 1),
                  peak_rss_gib=round(peak / 1024**3, 2),
                  weights_mib=round(sum(f.stat().st_size for f in Path(model).glob("*.safetensors")) / 2**20, 1))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the bf16 folder")
    p.add_argument("--quantized", nargs="+", required=True, help="4-bit folders of the same model")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--out", default=".cache/bench/quantized.json")
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [measure(m, args, out.with_name(f"server-{i}.log")) for i, m in enumerate([args.model, *args.quantized])]
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["speed_vs_bf16"] = round(r["tokens_per_s"] / base, 2)
        print(f"{r['model']}: {r['tokens_per_s']} tokens/s ({r['speed_vs_bf16']}x), "
              f"peak RSS {r['peak_rss_gib']} GiB, weights {r['weights_mib']} MiB")
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
