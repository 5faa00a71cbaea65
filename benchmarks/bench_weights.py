"""Peak memory (RSS growth) of `weights recover` vs. model size, against the naive way (load both
state dicts whole, add, save), on the same synthetic LLaMA checkpoint, in one run.

    .venv/bin/python benchmarks/bench_weights.py [--layers 8 --hidden 1024 --shard 100MB]

Each method runs in its own subprocess, which samples its own RSS while it works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Each child samples its own RSS every 5 ms while the work runs and reports the peak
# above what it held before the work started (imports excluded).
SAMPLER = """
import threading, psutil, time
_proc = psutil.Process()
_before = _proc.memory_info().rss
_peak = [_before]
_stop = threading.Event()
def _sample():
    while not _stop.is_set():
        _peak[0] = max(_peak[0], _proc.memory_info().rss)
        time.sleep(0.005)
threading.Thread(target=_sample, daemon=True).start()
"""
REPORT = "\n_stop.set(); print('PEAK', _peak[0] - _before)\n"

NAIVE_IMPORTS = """
import sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
"""
NAIVE = """
def load(d):
    sd = {}
    for f in sorted(Path(d).glob('*.safetensors')):
        sd.update(load_file(str(f)))
    return sd
base, diff, out = sys.argv[1:4]
b, d = load(base), load(diff)
t = {k: (d[k].float() + b[k].float()) for k in d}
Path(out).mkdir()
save_file(t, out + '/model.safetensors')
"""

RECOVER_IMPORTS = """
import sys
from ie_service.models.weights.diff import recover
"""
RECOVER = "recover(*sys.argv[1:4])"


def run(imports: str, work: str, *args: str) -> tuple[float, float]:
    """(seconds, peak RSS growth in bytes during ``work``) of a Python subprocess."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", imports + SAMPLER + work + REPORT, *args],
                          stderr=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - t, int(proc.stdout.split("PEAK")[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--shard", default="100MB")
    ap.add_argument("--out", default="benchmarks/results/weights.json")
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = LlamaConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                          num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                          num_key_value_heads=args.hidden // 64, tie_word_embeddings=False)
        for name, seed in (("base", 0), ("diff", 1)):
            torch.manual_seed(seed)
            LlamaForCausalLM(cfg).to(torch.float32).save_pretrained(tmp / name, max_shard_size=args.shard)
        size = sum(f.stat().st_size for f in (tmp / "diff").glob("*.safetensors"))
        shard = max(f.stat().st_size for f in (tmp / "diff").glob("*.safetensors"))
        results = {"model_bytes": size, "largest_shard_bytes": shard}
        secs, rss = run(RECOVER_IMPORTS, RECOVER, str(tmp / "base"), str(tmp / "diff"), str(tmp / "rec"))
        results["recover"] = {"seconds": secs, "peak_rss_growth": rss}
        secs, rss = run(NAIVE_IMPORTS, NAIVE, str(tmp / "base"), str(tmp / "diff"), str(tmp / "naive"))
        results["naive"] = {"seconds": secs, "peak_rss_growth": rss}

    gib = 1024**3
    print(f"model {size / gib:.2f} GiB (fp32), largest shard {shard / gib:.2f} GiB")
    for name in ("recover", "naive"):
        r = results[name]
        grow = r["peak_rss_growth"]
        print(f"{name:8} peak RSS growth {grow / gib:.2f} GiB = {grow / size:.2f}x model = "
              f"{grow / shard:.1f}x largest shard, {r['seconds']:.1f}s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), **results}, indent=2))


if __name__ == "__main__":
    main()
