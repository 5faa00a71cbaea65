"""``ie-service train``: render the adapter's training data, fit a LoRA adapter.

The two steps are separate so that ``fit`` can run where only torch, transformers and
peft are installed (a lent GPU machine: ``python -m ie_service.training.fit``)."""

from __future__ import annotations

import argparse


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
                       description=data.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_arguments(d)
    d.set_defaults(func=_data)
    f = ops.add_parser("fit", help="fit a LoRA adapter on rendered examples (CPU or CUDA)",
                       description=fit.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_arguments(f)
    f.set_defaults(func=_fit)
    r = ops.add_parser("run", help="your annotations → adapter → base-vs-adapter table, in one command",
                       description=loop.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    loop.add_arguments(r)
    r.set_defaults(func=_run)
