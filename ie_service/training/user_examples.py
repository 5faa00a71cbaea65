"""``train data --from``: a user's files → training examples, dev gold files and a report.

Reads every file (``user_data``), turns it into sets (``user_sets``), renders the examples
with the serving prompt path (``examples``), mixes in a share of the built-in sets when asked,
and writes what ``train data`` writes for the built-in sets: ``OUT``, ``<stem>.meta.json`` and
the dev splits as gold JSONL, one file per task (``<eval-dir>/<task>-dev.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..models.weights.md5 import file_md5
from .user_data import UserFile, read_user_file
from .user_sets import USER_VARIANTS, builtin_examples, user_sets


class BadRows(UserInputError):
    """``--strict`` and a file has bad rows (one line per reason, exit 2)."""


def default_eval_dir(out: Path) -> Path:
    return out.parent / "eval"


def read_files(paths: list[str], fmt: str | None) -> list[UserFile]:
    from tqdm import tqdm

    return [read_user_file(p, fmt) for p in tqdm(paths, desc="read", unit="file", disable=len(paths) < 2)]


def report_bad_rows(files: list[UserFile], strict: bool) -> None:
    """Print every file's bad rows to stderr (one line per reason); with ``strict`` raise,
    naming the first reason (the error line says it once) after the others (``also:``)."""
    problems = [line for f in files for line in f.problems()]
    for line in problems[1:] if strict else problems:
        print(("also: " if strict else "skipped: ") + line, file=sys.stderr)
    if strict and problems:
        n = sum(len(f.bad) for f in files)
        raise BadRows(f"{n} bad row(s) and --strict: {problems[0]}")


def render_user_data(args: argparse.Namespace) -> dict[str, Any]:
    """Write the examples, meta and dev gold files of ``args.from_files``; the summary."""
    from tqdm import tqdm

    from ..evaluation.datasets import data_dir
    from .files import meta_path, renderer, write_examples
    from .examples import ExampleBuilder, Inventory, build_examples, write_gold_jsonl

    if not 0.0 <= args.dev_share < 1.0:
        raise UserInputError(f"--dev-share {args.dev_share}: must be in [0, 1)")
    if not 0.0 <= args.mix_builtin < 1.0:
        raise UserInputError(f"--mix-builtin {args.mix_builtin}: must be in [0, 1)")
    files = read_files(args.from_files, args.format)
    sets = user_sets(files, args.dev_share, args.license)
    report_bad_rows(files, args.strict)
    if not sets or not any(s.train for s in sets):
        raise UserInputError(f"no usable training documents in {', '.join(args.from_files)}")
    render = renderer(args.model, args.prompt_format)
    per_source = {k: int(v) for k, _, v in (p.partition("=") for p in args.source_variants.split(",") if p)}
    variants = per_source.get("user", USER_VARIANTS)
    train: list[dict] = []
    counts: dict[str, Any] = {}
    shape = getattr(args, "answer_shape", "compact")
    for s in tqdm(sets, desc="render", unit="set"):  # distractors: each file's own labels
        made, c = build_examples(Path("."), [s.source], render, seed=args.seed, variants=variants,
                                 splits={s.source.name: (s.train, s.dev, 0)}, shape=shape)
        train += made
        counts.update(c)
    user_examples = len(train)
    builtin_count = round(user_examples * args.mix_builtin / (1 - args.mix_builtin)) if args.mix_builtin else 0
    if builtin_count:
        root = Path(args.data_dir) if args.data_dir else data_dir() / "train"
        if not root.is_dir():
            raise UserInputError(f"--mix-builtin needs the built-in training sets: no folder {root} (--data-dir)")
        extra, c = builtin_examples(root, render, builtin_count, args.seed, shape)
        train += extra
        counts.update(c)
    random.Random(args.seed).shuffle(train)
    builder = ExampleBuilder(render, shape=shape)
    rng = random.Random(args.seed + 1)
    dev_rows = []
    for s in tqdm(sets, desc="dev examples", unit="set"):
        inv = Inventory.of(s.source.task, s.train + s.dev)
        dev_rows += [{**r, "split": "dev"} for r in builder.for_source(s.source, s.dev, inv, inv.names, rng, 1, {})]
    out = Path(args.out)
    write_examples(train + dev_rows, out)
    eval_dir = Path(args.eval_dir) if args.eval_dir else default_eval_dir(out)
    eval_dir.mkdir(parents=True, exist_ok=True)
    eval_files = {}
    for task in sorted({s.source.task for s in sets}):
        docs = [d for s in sets if s.source.task == task for d in s.dev]
        if docs:
            path = eval_dir / f"{task}-dev.jsonl"
            write_gold_jsonl(docs, path)
            eval_files[task] = {"file": str(path), "docs": len(docs)}
    meta = {"from": [f.report() for f in files], "files_md5": {str(f.path): file_md5(f.path) for f in files},
            "sources": counts, "variants": variants, "seed": args.seed, "dev_share": args.dev_share,
            "mix_builtin": args.mix_builtin, "license": args.license, "answer_shape": shape,
            "user_examples": user_examples, "builtin_examples": len(train) - user_examples,
            "train_examples": len(train), "dev_examples": len(dev_rows), "eval": eval_files}
    meta_path(out).write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return {"train_examples": len(train), "user_examples": user_examples,
            "builtin_examples": len(train) - user_examples, "dev_examples": len(dev_rows),
            "bad_rows": sum(len(f.bad) for f in files), "eval": eval_files, "out": str(out)}
