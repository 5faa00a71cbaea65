"""``ie-service train run``: your annotations → an adapter → how much it helps, in one command.

Steps, each with a progress bar and each skipped by ``--resume`` once done:

1. data: ``train data --from FILE ...`` into ``OUT/data/`` (examples, meta, dev gold per task);
2. fit: ``train fit`` into ``OUT/`` (``adapter/``, ``manifest.json``, checkpoints);
3. eval: the dev split of each task through a local server (``ie_service.local_server``),
   once on the base (the served default model, or ``--model``) and once on the base with
   the adapter: merged into a folder under ``OUT/merged`` (``weights merge-lora``; the fast
   path on a CPU) or, with ``--serve lora``, applied at run time (``serve --lora``);
4. report: P/R/F1 per type, base vs adapter, printed as a table and stored in
   ``OUT/manifest.json`` (``"user_eval"``) and ``OUT/report.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

ADAPTER_NAME = "trained"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_files", action="append", required=True, metavar="FILE",
                   help="your annotations (gold JSONL, doccano JSONL, Label Studio JSON; repeatable)")
    p.add_argument("--out", required=True, help="run folder (data/, adapter/, eval/, manifest.json)")
    p.add_argument("--max-minutes", type=float, default=None, help="training time budget")
    p.add_argument("--max-steps", type=int, default=None, help="stop training after N steps")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--mix-builtin", type=float, default=0.0, metavar="SHARE",
                   help="share of training examples from the built-in sets (keeps the general skills)")
    p.add_argument("--data-dir", default=None, help="the built-in training sets (default: shared/data/train)")
    p.add_argument("--format", default=None, choices=["gold", "doccano", "label-studio"])
    p.add_argument("--dev-share", type=float, default=0.1)
    p.add_argument("--strict", action="store_true", help="refuse a file with any bad row")
    p.add_argument("--license", default="as stated by the annotations' owner")
    p.add_argument("--model", default=None,
                   help="base model folder (default: the served default, the embedded model with "
                        "the shipped IE adapter merged in)")
    p.add_argument("--serve", choices=["merged", "lora"], default="merged",
                   help="how the adapter is evaluated: merged into a folder, or applied at run time")
    p.add_argument("--eval-limit", type=int, default=None, help="first N dev documents per task")
    p.add_argument("--dev-examples", type=int, default=32, help="examples for the dev loss (computed at "
                                                                "the start and end of fitting)")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="skip the steps already done in OUT")
    from .data import add_shape_argument

    add_shape_argument(p)


def _parsed(add: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def data_step(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from . import data
    from .files import meta_path
    from .user_examples import render_user_data

    examples = out / "data" / "examples.jsonl.gz"
    meta = meta_path(examples)
    if args.resume and meta.is_file():
        from ..models.weights.md5 import file_md5

        saved = json.loads(meta.read_text())
        if (saved.get("files_md5") == {str(Path(f)): file_md5(f) for f in args.from_files}
                and saved.get("answer_shape", "full") == getattr(args, "answer_shape", "compact")):
            return saved
    argv = ["--out", str(examples), "--dev-share", str(args.dev_share), "--license", args.license,
            "--mix-builtin", str(args.mix_builtin), "--seed", str(args.seed),
            "--answer-shape", getattr(args, "answer_shape", "compact")]
    for f in args.from_files:
        argv += ["--from", f]
    for flag, value in (("--data-dir", args.data_dir), ("--format", args.format), ("--model", args.model)):
        if value:
            argv += [flag, value]
    if args.strict:
        argv.append("--strict")
    render_user_data(_parsed(data.add_arguments, argv))
    return json.loads(meta.read_text())


def _child(argv: list[str]) -> None:
    """Run a step in its own process: the trainer's memory goes back before servers start."""
    import subprocess
    import sys

    from ..errors import UserInputError

    done = subprocess.run([sys.executable, "-m", *argv])
    if done.returncode != 0:
        raise UserInputError(f"{argv[0]} failed (exit {done.returncode}); see the lines above")


def fit_step(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    manifest = out / "manifest.json"
    if args.resume and manifest.is_file() and (out / "adapter" / "adapter_model.safetensors").is_file():
        return json.loads(manifest.read_text())
    argv = ["--examples", str(out / "data" / "examples.jsonl.gz"), "--out", str(out),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
            "--lr", str(args.lr), "--rank", str(args.rank), "--alpha", str(2 * args.rank),
            "--snapshots", "1", "--dev-examples", str(args.dev_examples)]
    for flag, value in (("--max-minutes", args.max_minutes), ("--max-steps", args.max_steps),
                        ("--model", args.model)):
        if value is not None:
            argv += [flag, str(value)]
    if args.resume:
        argv.append("--resume")
    _child(["ie_service.training.fit", *argv])
    return json.loads(manifest.read_text())


def merged_model(args: argparse.Namespace, out: Path) -> Path:
    """The base with the adapter merged in (made once per adapter: its md5 names the folder)."""
    from ..models.embedded import ensure_embedded_model
    from ..models.weights.md5 import file_md5

    adapter = out / "adapter"
    target = out / "merged" / file_md5(adapter / "adapter_model.safetensors")[:12]
    if not (target / "config.json").is_file():
        if target.parent.exists():
            shutil.rmtree(target.parent)
        base = Path(args.model) if args.model else ensure_embedded_model()
        _child(["ie_service.cli", "weights", "merge-lora", "--base", str(base), "--lora", str(adapter),
                "--out", str(target), "--dtype", "bfloat16", "--force"])
    return target


def eval_step(args: argparse.Namespace, out: Path, eval_files: dict[str, dict]) -> dict[str, Any]:
    """Scores of base and adapter per task (predictions resumable under ``OUT/eval``)."""
    from contextlib import nullcontext

    from tqdm import tqdm

    from ..local_server import local_server

    folder = out / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    base = ["--model", args.model] if args.model else []
    if args.serve == "lora":  # one server: the base, the adapter picked per request
        servers = [("lora", base + ["--lora", f"{ADAPTER_NAME}={out / 'adapter'}"],
                    [("base", None), ("adapter", ADAPTER_NAME)])]
    else:
        with tqdm(total=1, desc="merge adapter", unit="model") as bar:
            merged = merged_model(args, out)
            bar.update()
        servers = [("base", base, [("base", None)]), ("adapter", ["--model", str(merged)], [("adapter", None)])]
    scores: dict[str, dict[str, Any]] = {}
    for name, flags, runs in servers:
        pending = any(not _done(folder, task, variant, info, args.eval_limit)
                      for task, info in eval_files.items() for variant, _ in runs)
        server = (local_server(flags, log_path=folder / f"server-{name}.log", progress=True) if pending
                  else nullcontext("http://127.0.0.1:9"))  # all predicted: nothing is sent
        with server as url:
            for task, info in eval_files.items():
                for variant, adapter in runs:
                    scores.setdefault(task, {})[variant] = _score(url, task, variant, adapter, info, args, folder)
    return scores


def _docs(info: dict, limit: int | None) -> list:
    from ..evaluation import datasets

    docs = datasets.load(info["file"], "jsonl")
    return docs[:limit] if limit else docs


def _predictions(folder: Path, task: str, variant: str) -> Path:
    return folder / f"{task}-{variant}.predictions.jsonl"


def _done(folder: Path, task: str, variant: str, info: dict, limit: int | None) -> bool:
    path = _predictions(folder, task, variant)
    if not path.is_file():
        return False
    ids = {json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    return all(d.id in ids for d in _docs(info, limit))


def _score(url: str, task: str, variant: str, adapter: str | None, info: dict, args: argparse.Namespace,
           folder: Path) -> dict[str, Any]:
    from ..evaluation import runner
    from ..extraction.tasks import TASKS

    schema = TASKS[task].gold_schema(_docs(info, None))  # every label of the dev split
    body: dict[str, Any] = {"schema": schema, "constrained": True,
                            "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    if adapter:
        body["adapter"] = adapter
    report = runner.evaluate(url, task, _docs(info, args.eval_limit), body, _predictions(folder, task, variant))
    return {"scores": report["scores"], "totals": report["totals"]}


def compare_table(scores: dict[str, dict[str, Any]]) -> str:
    """Base vs adapter, per task, score kind and type."""
    lines = []
    head = f"{'type':24} {'base P':>7} {'R':>6} {'F1':>6}   {'adapter P':>9} {'R':>6} {'F1':>6}  {'n':>5}"
    for task, variants in scores.items():
        base, adapted = variants.get("base", {}).get("scores", {}), variants.get("adapter", {}).get("scores", {})
        for kind in sorted(set(base) | set(adapted)):
            b, a = base.get(kind, {}), adapted.get(kind, {})
            lines += [f"{task} {kind}", head]
            types = sorted(set(b.get("per_type", {})) | set(a.get("per_type", {})))
            for name, bt, at in [*((t, b.get("per_type", {}).get(t), a.get("per_type", {}).get(t)) for t in types),
                                 ("micro", b.get("micro"), a.get("micro"))]:
                lines.append(f"{name[:24]:24} {_prf(bt)}   {_prf(at, 9)}  {_support(bt or at):>5}")
    return "\n".join(lines)


def _prf(r: dict | None, width: int = 7) -> str:
    if not r:
        return f"{'-':>{width}} {'-':>6} {'-':>6}"
    return f"{r['precision']:{width}.3f} {r['recall']:6.3f} {r['f1']:6.3f}"


def _support(r: dict | None) -> int:
    return (r["tp"] + r["fn"]) if r else 0


def run(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    logging.getLogger("httpx").setLevel(logging.WARNING)  # the bars say what is happening

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    timings: dict[str, float] = {}
    with tqdm(total=4, desc="train run", unit="step", position=0) as steps:
        t = time.time()
        steps.set_postfix_str("data")
        meta = data_step(args, out)
        timings["data_s"] = round(time.time() - t, 1)
        steps.update()
        t = time.time()
        steps.set_postfix_str("fit")
        manifest = fit_step(args, out)
        timings["fit_s"] = round(time.time() - t, 1)
        steps.update()
        if not meta.get("eval"):
            steps.close()
            print("no dev documents held out (--dev-share): nothing to compare")
            return 0
        t = time.time()
        steps.set_postfix_str("eval")
        scores = eval_step(args, out, meta["eval"])
        timings["eval_s"] = round(time.time() - t, 1)
        steps.update()
        steps.set_postfix_str("report")
        table = compare_table(scores)
        timings["total_s"] = round(time.time() - started, 1)
        report = {"from": args.from_files, "serve": args.serve, "eval": meta["eval"], "scores": scores,
                  "timings": timings, "train": {k: manifest.get(k) for k in (
                      "steps", "tokens_seen", "train_seconds", "tokens_per_second")}}
        manifest["user_eval"] = report
        manifest["user_data"] = {k: meta.get(k) for k in ("from", "license", "dev_share", "mix_builtin",
                                                          "user_examples", "builtin_examples", "eval")}
        (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
        steps.update()
    print(table)
    print(json.dumps(timings))
    print(f"adapter: {out / 'adapter'}  report: {out / 'report.json'}")
    return 0
