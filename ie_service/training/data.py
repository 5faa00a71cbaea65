"""Render the adapter's training examples (``ie-service train data``).

From the built-in training sets (``--data-dir``, laid out like shared/data/train) or from
your own annotations (``--from FILE``, repeatable: the gold JSONL ``eval`` reads, doccano
JSONL, or a Label Studio JSON export; see ``training.user_data``), optionally with a share of
the built-in sets mixed in (``--mix-builtin``).

Writes ``OUT`` (JSONL, gzip when it ends in ``.gz``: train rows, and dev rows with
``"split": "dev"`` for the dev loss), ``<stem>.meta.json`` beside it (sources, licenses,
md5 of every data file, counts, bad rows) and each held-out dev split as gold JSONL for
``ie-service eval --dataset FILE`` (``--eval-dir``; with ``--from`` always, default
``OUT``'s folder / ``eval``). Bad rows of a user file are counted and reported with their
line numbers, then skipped, or refused with ``--strict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.weights.md5 import file_md5
from .files import meta_path, renderer, write_examples


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="folder laid out like shared/data/train (the built-in "
                                                    "sets; with --from: where --mix-builtin draws from)")
    p.add_argument("--from", dest="from_files", action="append", default=None, metavar="FILE",
                   help="your annotations: gold JSONL, doccano JSONL or a Label Studio JSON export (repeatable)")
    p.add_argument("--format", default=None, choices=["gold", "doccano", "label-studio"],
                   help="format of every --from file (default: sniffed per file)")
    p.add_argument("--dev-share", type=float, default=0.1, help="share of --from texts held out (by hash)")
    p.add_argument("--strict", action="store_true", help="refuse a --from file with any bad row")
    p.add_argument("--license", default="as stated by the annotations' owner",
                   help="license of the --from data (recorded in the manifest)")
    p.add_argument("--mix-builtin", type=float, default=0.0, metavar="SHARE",
                   help="with --from: this share of the training examples comes from the built-in sets")
    p.add_argument("--out", required=True, help="examples file (.jsonl or .jsonl.gz)")
    p.add_argument("--sources", default=None, help="comma-separated source names (default: all)")
    p.add_argument("--variants", type=int, default=2, help="examples per training sentence (schemas differ)")
    p.add_argument("--source-variants", default="crossner=6",
                   help="per-source override of --variants, e.g. crossner=6 (small domain sets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="model whose prompt format renders the prompts "
                                                 "(default: the embedded model)")
    p.add_argument("--prompt-format", default="auto", help="as for serve")
    p.add_argument("--eval-dir", default=None, help="also write the dev splits as gold JSONL here")
    add_shape_argument(p)


def add_shape_argument(p: argparse.ArgumentParser) -> None:
    from ..extraction.constraints import ANSWER_SHAPES, COMPACT

    p.add_argument("--answer-shape", choices=ANSWER_SHAPES, default=COMPACT,
                   help="the answers the adapter learns to write: compact (only the labels the text holds; "
                        "fewer tokens to decode) or full (every label a key, [] for none: OneKE's shape, the "
                        "v2 adapter's). Recorded in the adapter's manifest; a merged model declares it")


def run(args: argparse.Namespace) -> int:
    import random

    if getattr(args, "from_files", None):
        from .user_examples import render_user_data

        summary = render_user_data(args)
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    if not args.data_dir:
        from ..errors import UserInputError

        raise UserInputError("give --from FILE (your annotations) or --data-dir DIR (the built-in sets)")

    from .examples import ExampleBuilder, Inventory, build_examples, dev_sets, write_gold_jsonl
    from .sources import by_name, training_splits

    root = Path(args.data_dir)
    sources = by_name(args.sources.split(",") if args.sources else None)
    render = renderer(args.model, args.prompt_format)
    per_source = {k: int(v) for k, _, v in (p.partition("=") for p in args.source_variants.split(",") if p)}
    splits = training_splits(root, sources)
    train, counts = build_examples(root, sources, render, seed=args.seed, variants=args.variants,
                                   source_variants=per_source, splits=splits, shape=args.answer_shape)
    dev_rows = []
    rng = random.Random(args.seed + 1)
    builder = ExampleBuilder(render, shape=args.answer_shape)
    for s in sources:
        docs = splits[s.name][1]
        inv = Inventory.of(s.task, docs)
        dev_rows += [{**r, "split": "dev"} for r in builder.for_source(s, docs, inv, inv.names, rng, 1, {})]
    out = Path(args.out)
    write_examples(train + dev_rows, out)
    files = {f: file_md5(root / f) for s in sources for f in s.files}
    meta = {"sources": counts, "files_md5": files, "variants": args.variants, "answer_shape": args.answer_shape,
            "source_variants": per_source, "seed": args.seed,
            "train_examples": len(train), "dev_examples": len(dev_rows)}
    meta_path(out).write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    if args.eval_dir:
        folder = Path(args.eval_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, docs in dev_sets(root, splits).items():
            write_gold_jsonl(docs, folder / f"{name}.jsonl")
    print(json.dumps({"train_examples": len(train), "dev_examples": len(dev_rows), "out": str(out)}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ie_service.training.data", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
