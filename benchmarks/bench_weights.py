"""Peak memory (RSS) of `weights recover` vs. model size, against the naive way (load both
state dicts whole, add, save), on the same synthetic LLaMA checkpoint, in one run.

    .venv/bin/python benchmarks/bench_weights.py [--layers 8 --hidden 1024 --shard 100MB]

Each method runs in its own subprocess; peak RSS is that process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAIVE = """
import sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
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

RECOVER = """
import sys
from ie_service.weights.diff import recover
recover(*sys.argv[1:4])
"""


PEAK = "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"


def run(code: str, *args: str) -> tuple[float, float]:
    """(seconds, peak RSS in bytes) of a Python subprocess, as it reports itself."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + PEAK, *args], stderr=subprocess.DEVNULL,
                          capture_output=False, stdout=subprocess.PIPE, text=True, check=True)
    peak_kib = int(proc.stdout.split("PEAK")[-1])
    return time.perf_counter() - t, peak_kib * 1024


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
        # the baseline's RSS includes interpreter + torch import: measure it alone
        _, idle = run("import torch, safetensors")
        results = {"model_bytes": size, "largest_shard_bytes": shard, "python_torch_idle_rss": idle}
        secs, rss = run(RECOVER, str(tmp / "base"), str(tmp / "diff"), str(tmp / "rec"))
        results["recover"] = {"seconds": secs, "peak_rss": rss}
        secs, rss = run(NAIVE, str(tmp / "base"), str(tmp / "diff"), str(tmp / "naive"))
        results["naive"] = {"seconds": secs, "peak_rss": rss}

    gib = 1024**3
    print(f"model {size / gib:.2f} GiB (fp32), largest shard {shard / gib:.2f} GiB, "
          f"idle python+torch {idle / gib:.2f} GiB")
    for name in ("recover", "naive"):
        r = results[name]
        print(f"{name:8} peak RSS {r['peak_rss'] / gib:.2f} GiB = {r['peak_rss'] / size:.2f}x model, "
              f"above idle {(r['peak_rss'] - idle) / size:.2f}x model, {r['seconds']:.1f}s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), **results}, indent=2))


if __name__ == "__main__":
    main()
