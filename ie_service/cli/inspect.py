"""``ie-service inspect-model DIR``: what the engine will make of a model folder (family,
tokenizer, dtype, quantization, prompt format and why, memory), without starting it."""

from __future__ import annotations

import argparse

from . import arg_types
from .common import DTYPES


def _on_cpu(backend: str) -> bool:
    """``auto``: the backend ``serve`` starts on (:func:`~ie_service.engine.backend.is_cpu_backend`)."""
    if backend != "auto":
        return backend == "cpu"
    from ..engine.backend import is_cpu_backend

    return is_cpu_backend()


def format_inspection(inspection) -> str:
    """The fields, one per line (what ``inspect-model`` prints)."""
    q = inspection.quantization
    rows = [
        ("model", inspection.path),
        ("family", inspection.family),
        ("architecture", f"{inspection.architecture or '?'} (model_type {inspection.model_type or '?'}, "
                         f"vocab {inspection.vocab_size or '?'})"),
        ("tokenizer", inspection.tokenizer),
        ("special tokens", " ".join(inspection.special_tokens) or "none"),
        ("chat template", "yes" if inspection.chat_template else "no"),
        ("stored dtype", inspection.stored_dtype),
        ("quantization", q.summary() + ("; passed to vLLM as --quantization " + q.method if q.pass_flag else "")
         if q else "none"),
        ("prompt format", f"{inspection.prompt_format} ({inspection.prompt_format_reason})"),
        ("runs in", f"{inspection.run_dtype} ({inspection.dtype_reason})"),
        ("memory", f"weights ~{_size(inspection.weights_gib)} at {inspection.run_dtype}; KV cache "
                   f"{inspection.kv_cache_mib_per_1k_tokens:g} MiB per 1k tokens"),
        ("files", " ".join(inspection.files)),
    ]
    rows += [("warning", w) for w in inspection.warnings]
    if inspection.refusal:
        rows.append(("refused", inspection.refusal))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..engine.host import read_host
    from ..models.folder import check_weight_files
    from ..models.inspection import inspect_model

    check_weight_files(args.dir)
    on_cpu = _on_cpu(args.backend)
    inspection = inspect_model(args.dir, dtype=args.dtype, on_cpu=on_cpu, host=read_host() if on_cpu else None,
                               served_name=args.served_model_name, tensor_parallel_size=args.tensor_parallel_size)
    print(inspection.model_dump_json(indent=2) if args.json else format_inspection(inspection))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect-model", help="what the engine will make of a model folder",
                       description="Read a model folder (config, tokenizer, quantization and generation "
                                   "configs, ie_service.json) and print what `serve --model DIR` will do: "
                                   "family, tokenizer kind, stored and run dtype, quantization, prompt "
                                   "format and why, memory. Starts no engine.")
    p.add_argument("dir", help="model folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="as for serve (default auto)")
    p.add_argument("--served-model-name", default=None, help="as for serve (a name can be evidence)")
    p.add_argument("--tensor-parallel-size", "-tp", type=arg_types.positive_int, default=1,
                   help="memory per worker")
    p.add_argument("--backend", choices=("auto", "cpu", "gpu"), default="auto",
                   help="which vLLM backend to plan for (auto: the one installed)")
    p.set_defaults(func=cmd_inspect)
