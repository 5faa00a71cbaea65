"""``ie-service train``: render the adapter's training data, fit a LoRA adapter.

The two steps are separate so that ``fit`` can run where only torch, transformers and
peft are installed (a lent GPU machine: ``python -m ie_service.training.fit``)."""

from __future__ import annotations

import argparse
import re

from . import arg_types

# Help for the training options that their modules leave without (they also run as
# ``python -m ie_service.training.fit`` on a bare GPU machine, without this CLI).
HELP = {
    "seed": "random seed (data sampling, LoRA init, shuffling)",
    "rank": "LoRA rank r",
    "alpha": "LoRA alpha (scale = alpha / r)",
    "dropout": "LoRA dropout",
    "lr": "peak learning rate (cosine schedule)",
    "batch_size": "examples per optimizer step",
    "epochs": "passes over the examples (a --max-minutes budget may stop earlier)",
    "checkpoint_minutes": "write a resumable checkpoint every N minutes",
    "format": "annotation format (default: sniffed per file)",
    "dev_share": "share of documents held out for the dev split (fixed by a hash of the text)",
    "license": "license recorded in the adapter's manifest",
    "max_tokens": "answer length limit per prompt when scoring",
}


# Value checks for the training options (argparse ``type=``, so a bad value is refused before
# any file is read or model loaded). By option name: the same name means the same in data,
# fit and run. The modules themselves stay free of this CLI (see HELP).
CHECKS = {
    "rank": arg_types.positive_int,
    "alpha": arg_types.positive_int,
    "dropout": arg_types.unit_float,
    "lr": arg_types.positive_float,
    "warmup": arg_types.unit_float,
    "batch_size": arg_types.positive_int,
    "epochs": arg_types.positive_float,
    "max_steps": arg_types.positive_int,
    "max_minutes": arg_types.positive_float,
    "max_len": arg_types.positive_int,
    "snapshots": arg_types.positive_int,
    "checkpoint_minutes": arg_types.positive_float,
    "dev_examples": arg_types.non_negative_int,
    "variants": arg_types.positive_int,
    "eval_limit": arg_types.positive_int,
    "max_tokens": arg_types.positive_int,
}


def plain(doc: str | None) -> str | None:
    """A module docstring as ``--help`` text: reStructuredText markup (double backticks,
    ``:role:`x```) made plain."""
    if doc is None:
        return None
    return re.sub(r":\w+:`([^`]+)`", r"\1", doc).replace("``", "")


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Help text from :data:`HELP` and value checks from :data:`CHECKS` for the options the
    training modules add."""
    for action in parser._actions:
        if action.help is None and action.dest in HELP:
            action.help = HELP[action.dest]
        if action.dest in CHECKS:
            action.type = CHECKS[action.dest]


def _data(args: argparse.Namespace) -> int:
    from ..training import data

    return data.run(args)


def _fit(args: argparse.Namespace) -> int:
    from ..training import fit

    return fit.run(args)


def _run(args: argparse.Namespace) -> int:
    from ..training import loop

    return loop.run(args)


def register(sub: argparse._SubParsersAction) -> None:
    from ..training import data, fit, loop

    train = sub.add_parser("train", help="train an IE LoRA adapter (data, fit, run)",
                           description="Train a LoRA adapter that teaches a model the service's own "
                                       "NER / RE / EE prompts. `train data` renders examples with the "
                                       "serving code path; `train fit` trains on them.")
    ops = train.add_subparsers(dest="op", required=True, metavar="OP")
    d = ops.add_parser("data", help="render (prompt, answer) examples from the training sets",
                       description=plain(data.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_arguments(d)
    _fill_help(d)
    d.set_defaults(func=_data)
    f = ops.add_parser("fit", help="fit a LoRA adapter on rendered examples (CPU or CUDA)",
                       description=plain(fit.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_arguments(f)
    _fill_help(f)
    f.set_defaults(func=_fit)
    r = ops.add_parser("run", help="your annotations → adapter → base-vs-adapter table, in one command",
                       description=plain(loop.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    loop.add_arguments(r)
    _fill_help(r)
    r.set_defaults(func=_run)
