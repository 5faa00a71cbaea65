"""Fit a LoRA adapter on rendered examples (``ie-service train fit``).

Needs only torch, transformers, peft and tqdm (no vLLM, no pydantic), so the same file runs
on a CUDA machine as ``python -m ie_service.training.fit``. Loss on answer tokens only,
length-grouped batches, bf16 autocast where the hardware has native bf16 (CUDA, AVX512-BF16
/ AMX CPUs) and float32 otherwise, a cosine schedule fitted to ``--max-minutes`` once the
step time is known, checkpoints every few minutes and ``--resume``.

Output folder: ``adapter/`` (peft, bf16), ``snapshots/step-N/`` (adapters along the way, for
the F1-against-minutes curve), ``checkpoint/`` (resume state) and ``manifest.json``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..models.weights.md5 import file_md5

IGNORE = -100
REPLAN_EVERY = 50  # steps between fits of the schedule to --max-minutes
FIRST_PLANS = (5, 20)  # and these steps too: a slow machine may never reach step 50 in budget
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", required=True, help="JSONL(.gz) from `ie-service train data`")
    p.add_argument("--out", required=True, help="output folder (adapter/, manifest.json, ...)")
    p.add_argument("--model", default=None,
                   help="base model folder, or a .gguf file; default: the embedded SmolLM2-135M base")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=float, default=0.03, help="share of steps warming up")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after N steps (reproduces a run)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: the schedule is fitted to it after the first steps")
    p.add_argument("--max-len", type=int, default=1024, help="longer examples are left out")
    p.add_argument("--mix", default="ner=1,re=1,ee=1", help="per-task weight: repeats (>1) or subsamples (<1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where native, else float32) | bfloat16 | float32")
    p.add_argument("--snapshots", type=int, default=3, help="adapters kept along the way (curve)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--dev-examples", type=int, default=256, help="held-out examples for the dev loss")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--commit", default=None, help="project commit for the manifest (default: git)")


# --- machine -------------------------------------------------------------------------

def machine(device: str) -> dict[str, Any]:
    import torch

    from ..engine.host import INTERESTING_FLAGS, read_host

    flags = read_host().cpu_flags
    out: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "cpu_flags": [f for f in INTERESTING_FLAGS if f in flags],
                           "device": device}
    if device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def pick_dtype(name: str, device: str) -> str:
    if name != "auto":
        return name
    if device == "cuda":
        return "bfloat16"
    from ..engine.host import read_host

    return "bfloat16" if read_host().native_bf16 else "float32"


def project_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- data ----------------------------------------------------------------------------

def read_examples(path: Path) -> list[dict]:
    """The rows of an examples file (``train data``'s JSONL, gzipped if ``.gz``), each
    checked to be an example (``prompt`` and ``answer`` strings). A file that is not one (a
    gold file, binary, empty) is a :class:`~ie_service.errors.UserInputError` naming
    the file and line, before anything is loaded."""
    from ..errors import BadInputFile

    if not path.is_file():
        raise BadInputFile(path, "no such file (render examples with `ie-service train data`)")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    rows.append(_example(path, n, line))
    except UnicodeDecodeError:
        raise BadInputFile(path, f"not UTF-8 text (line {len(rows) + 1} or near it)") from None
    except (OSError, EOFError) as exc:  # a .gz that is not gzip, or cut short
        raise BadInputFile(path, f"cannot be read: {exc}") from None
    if not rows:
        raise BadInputFile(path, "no examples (the file is empty)")
    return rows


def _example(path: Path, n: int, line: str) -> dict:
    """One line of an examples file, checked."""
    from ..errors import BadInputFile

    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        raise BadInputFile(path, "not JSON", line=n) from None
    if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not isinstance(row.get("answer"), str):
        raise BadInputFile(path, "not a training example (expected prompt and answer strings); render "
                                 "examples from annotations with `ie-service train data`", line=n)
    return row


def answer_shape_of(rows: list[dict]) -> str:
    """The answer shape the examples teach (each row's ``answer_shape``; ``full`` for rows
    rendered before shapes existed). One adapter learns one shape: a mixed file is refused."""
    shapes = {r.get("answer_shape", "full") for r in rows}
    if len(shapes) > 1:
        from ..errors import UserInputError

        raise UserInputError(f"the examples mix answer shapes {sorted(shapes)}: render them with one "
                             "--answer-shape")
    return shapes.pop() if shapes else "full"


def content_md5(path: Path) -> str:
    """md5 of a gzip file's uncompressed bytes (its header holds a time stamp)."""
    h = hashlib.md5()
    with gzip.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parse_mix(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, _, weight = part.partition("=")
        out[task.strip()] = float(weight)
    return out


def mixed(rows: list[dict], mix: dict[str, float], rng: random.Random) -> list[dict]:
    """Each task's rows repeated ``int(w)`` times plus a random ``w % 1`` share."""
    out = []
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        w = mix.get(task, 1.0)
        out += mine * int(w) + rng.sample(mine, round(len(mine) * (w % 1)))
    return out


def encode(tokenizer, row: dict) -> tuple[list[int], list[int]]:
    """Prompt tokens exactly as the engine encodes them, then answer + end of turn."""
    prompt = tokenizer.encode(row["prompt"], add_special_tokens=True)
    answer = tokenizer.encode(row["answer"], add_special_tokens=False) + [tokenizer.eos_token_id]
    return prompt + answer, [IGNORE] * len(prompt) + answer


def length_grouped(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length: shuffle, sort within windows of 64 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 64
    batches = []
    for i in range(0, len(order), window):
        chunk = sorted(order[i:i + window], key=lambda j: lengths[j])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(items: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, (x, y) in enumerate(items):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return ids, labels, mask


# --- model ---------------------------------------------------------------------------

def load_base(model: str | None, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None:
        from ..models.embedded import ensure_embedded_model

        model = str(ensure_embedded_model())
    path = Path(model)
    kw = {"gguf_file": path.name} if path.suffix == ".gguf" else {}
    folder = str(path.parent) if kw else str(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw).to(device)
    return base, tokenizer, model


def save_adapter(model, folder: Path) -> None:
    """The adapter in bf16 (half the bytes; merged in float32 later)."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).cpu().contiguous()
             for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, str(folder / "adapter_model.safetensors"))
    model.peft_config["default"].save_pretrained(str(folder))


# --- the loop ------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    examples_path = Path(args.examples)
    rows = read_examples(examples_path)  # a file that is not examples: refused before torch loads
    shape = answer_shape_of(rows)

    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = pick_dtype(args.dtype, device)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    train_rows = mixed([r for r in rows if r.get("split", "train") == "train"], parse_mix(args.mix), rng)
    dev_rows = [r for r in rows if r.get("split") == "dev"]
    dev_rows = random.Random(args.seed + 1).sample(dev_rows, min(args.dev_examples, len(dev_rows)))

    base, tokenizer, model_name = load_base(args.model, device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train = [e for e in (encode(tokenizer, r) for r in train_rows) if len(e[0]) <= args.max_len]
    dev = [e for e in (encode(tokenizer, r) for r in dev_rows) if len(e[0]) <= args.max_len]
    lengths = [len(x) for x, _ in train]

    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.dropout,
                      target_modules=TARGET_MODULES, task_type="CAUSAL_LM")
    model = get_peft_model(base, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    planned = max(1, math.ceil(steps_per_epoch * args.epochs))  # may shrink to fit --max-minutes
    if args.max_steps:
        planned = min(planned, args.max_steps)
    state = {"step": 0, "tokens": 0, "answer_tokens": 0, "seconds": 0.0, "planned": planned,
             "log": [], "dev": [], "snapshots": []}
    ckpt = out / "checkpoint"
    if args.resume and (ckpt / "state.json").is_file():
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = json.loads((ckpt / "state.json").read_text())
        set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
        optim.load_state_dict(torch.load(ckpt / "optim.pt", weights_only=False))

    def lr_at(step: int) -> float:
        warm = max(1, int(state["planned"] * args.warmup))
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, state["planned"] - warm))
        return 0.5 * (1 + math.cos(math.pi * progress))

    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def dev_loss() -> float | None:
        if not dev:
            return None
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad(), autocast:
            for i in range(0, len(dev), args.batch_size):
                ids, labels, mask = (t.to(device) for t in collate(dev[i:i + args.batch_size], pad_id))
                n = int((labels[:, 1:] != IGNORE).sum())
                total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
                count += n
        model.train()
        return round(total / count, 4)

    def save_checkpoint() -> None:
        tmp = out / "checkpoint.tmp"
        save_adapter(model, tmp)
        torch.save(optim.state_dict(), tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        if ckpt.exists():
            import shutil

            shutil.rmtree(ckpt)
        tmp.rename(ckpt)

    def snapshot_steps() -> set[int]:
        return {max(1, round(state["planned"] * k / args.snapshots)) for k in range(1, args.snapshots)}

    snap_at = snapshot_steps()
    if not state["dev"]:
        state["dev"].append({"step": 0, "minutes": 0.0, "tokens": 0, "dev_loss": dev_loss()})
    model.train()
    bar = tqdm(total=state["planned"], initial=state["step"], desc="train", unit="step")
    t0 = time.time() - state["seconds"]
    last_ckpt = time.time()
    epoch = state["step"] // steps_per_epoch
    while state["step"] < state["planned"]:
        batches = length_grouped(lengths, args.batch_size, random.Random(args.seed * 1000 + epoch))
        for batch in batches[state["step"] - epoch * steps_per_epoch:]:
            if state["step"] >= state["planned"]:
                break
            for g in optim.param_groups:
                g["lr"] = args.lr * lr_at(state["step"])
            ids, labels, mask = (t.to(device) for t in collate([train[j] for j in batch], pad_id))
            with autocast:
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            optim.zero_grad(set_to_none=True)
            state["step"] += 1
            state["tokens"] += int(mask.sum())
            state["answer_tokens"] += int((labels != IGNORE).sum())
            state["seconds"] = time.time() - t0
            replan = state["step"] % REPLAN_EVERY == 0 or state["step"] in FIRST_PLANS
            if replan and args.max_minutes and not args.max_steps:
                # fit the schedule to the budget with the step time of the last window (the
                # first steps are slow while kernels warm up: a whole-run mean under-plans)
                step0, sec0 = state.get("last_plan") or [0, 0.0]
                per_step = (state["seconds"] - sec0) / (state["step"] - step0)
                state["last_plan"] = [state["step"], state["seconds"]]
                fits = state["step"] + int((args.max_minutes * 60 - state["seconds"]) / per_step)
                state["planned"] = max(state["step"] + 1, min(math.ceil(steps_per_epoch * args.epochs), fits))
                bar.total = state["planned"]
                snap_at = snapshot_steps()
            if args.max_minutes and not args.max_steps and state["seconds"] > args.max_minutes * 60:
                state["planned"] = state["step"]  # over budget (a slowed machine): stop here
            if state["step"] % 10 == 0:
                state["log"].append({"step": state["step"], "loss": round(loss.item(), 4),
                                     "lr": g["lr"], "tokens": state["tokens"]})
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{state['tokens'] / max(state['seconds'], 1e-9):.0f}")
            bar.update()
            if state["step"] in snap_at:
                folder = out / "snapshots" / f"step-{state['step']}"
                save_adapter(model, folder)
                state["dev"].append({"step": state["step"], "minutes": round(state["seconds"] / 60, 2),
                                     "tokens": state["tokens"], "dev_loss": dev_loss()})
                state["snapshots"].append(str(folder.relative_to(out)))
            if time.time() - last_ckpt > args.checkpoint_minutes * 60:
                save_checkpoint()
                last_ckpt = time.time()
        else:
            epoch += 1
    bar.close()
    save_adapter(model, out / "adapter")
    state["dev"].append({"step": state["step"], "minutes": round(state["seconds"] / 60, 2),
                         "tokens": state["tokens"], "dev_loss": dev_loss()})
    save_checkpoint()
    counts: dict[str, int] = {}
    for r in train_rows:
        key = f"{r['task']}/{r['language']}"
        counts[key] = counts.get(key, 0) + 1
    meta_path = examples_path.with_name(examples_path.name.split(".")[0] + ".meta.json")
    manifest = {
        "base_model": model_name if args.model else "embedded:smollm2-135m-instruct (base)",
        "examples": {"file": examples_path.name, "md5": file_md5(examples_path),
                     "content_md5": content_md5(examples_path) if examples_path.suffix == ".gz"
                     else file_md5(examples_path),
                     "train_rows_after_mix": len(train_rows), "by_task_language": counts,
                     "left_out_over_max_len": len(train_rows) - len(train),
                     "data": json.loads(meta_path.read_text()) if meta_path.is_file() else None},
        "hyperparameters": {k: getattr(args, k) for k in (
            "rank", "alpha", "dropout", "lr", "warmup", "batch_size", "epochs", "max_steps", "max_minutes",
            "max_len", "mix", "seed")} | {"target_modules": TARGET_MODULES, "dtype": dtype,
                                           "loss": "answer tokens only", "schedule": "cosine"},
        "steps": state["step"], "tokens_seen": state["tokens"], "answer_tokens_seen": state["answer_tokens"],
        "train_seconds": round(state["seconds"], 1), "wall_seconds": round(time.time() - started, 1),
        "tokens_per_second": round(state["tokens"] / max(state["seconds"], 1e-9)),
        "dev_loss": state["dev"], "loss_log": state["log"], "snapshots": state["snapshots"],
        "machine": machine(device), "commit": args.commit or project_commit(),
        "versions": _versions(),
        "reproduce": f"--max-steps {state['step']} --seed {args.seed}",
        "answer_shape": shape,  # weights merge-lora declares it in the merged model's ie_service.json
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    print(json.dumps({k: manifest[k] for k in ("steps", "tokens_seen", "train_seconds", "tokens_per_second")}))
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "peft"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ie_service.training.fit", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
