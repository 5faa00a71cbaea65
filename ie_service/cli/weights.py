"""``ie-service weights``: recover / apply-delta / make-diff / merge-lora / dequantize / quantize / md5."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import arg_types


def _reported(run: Callable[[argparse.Namespace], object]) -> Callable[[argparse.Namespace], int]:
    """A weights op whose known failures print ``error: ...`` and exit 2; a path result is printed."""
    def cmd(args: argparse.Namespace) -> int:
        from ..errors import UserInputError, one_line

        try:
            result = run(args)
        except (UserInputError, FileNotFoundError, ValueError) as exc:  # WeightsError among them
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 2
        if isinstance(result, int):
            return result
        print(result)
        return 0
    return cmd


@_reported
def cmd_recover(args: argparse.Namespace):
    from ..models.weights import diff

    return diff.recover(args.base, args.diff, args.out, fp16=args.fp16, force=args.force, prompt_format=args.prompt_format)


@_reported
def cmd_apply_delta(args: argparse.Namespace):
    from ..models.weights import diff

    return diff.apply_delta(args.base, args.delta, args.out, fp16=args.fp16, force=args.force, prompt_format=args.prompt_format)


@_reported
def cmd_make_diff(args: argparse.Namespace):
    from ..models.weights import diff

    return diff.make_diff(args.base, args.tuned, args.out, force=args.force)


@_reported
def cmd_merge_lora(args: argparse.Namespace):
    from ..models.weights.lora import merge_lora

    return merge_lora(args.base, args.lora, args.out, dtype=args.dtype, force=args.force, prompt_format=args.prompt_format)


@_reported
def cmd_dequantize(args: argparse.Namespace):
    from ..models.weights.dequantize import dequantize

    return dequantize(args.src, args.out, dtype=args.dtype, force=args.force)


@_reported
def cmd_quantize(args: argparse.Namespace):
    from ..models.weights.quantize import check_quantizable, quantize
    from ..training.calibration import calibration_prompts

    group_size = check_quantizable(args.src, method=args.method, group_size=args.group_size)  # before any work
    prompts = calibration_prompts(args.src, args.calibration, args.samples)
    return quantize(args.src, args.out, prompts, method=args.method, bits=args.bits, group_size=group_size,
                    force=args.force)


@_reported
def cmd_md5(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UserInputError
    from ..models.weights import md5

    if not any(p.is_file() and p.name != md5.MANIFEST for p in Path(args.dir).rglob("*")):
        raise UserInputError(f"{args.dir}: the folder has no files to checksum")
    if args.expect:
        problems = md5.check(args.dir, md5.read_manifest(args.expect))
        for p in problems:
            print(p, file=sys.stderr)
        print("OK" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    sums = md5.folder_md5(args.dir)
    target = args.write or f"{args.dir}/{md5.MANIFEST}"
    md5.write_manifest(sums, target)
    print(f"wrote {len(sums)} checksums to {target}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("weights", help="recover / apply-delta / make-diff / merge-lora / dequantize / "
                                       "quantize / md5",
                       description="Weight tooling. Works shard by shard (safetensors, lazy "
                                   "loading); output appears only when complete.")
    ops = w.add_subparsers(dest="op", required=True, metavar="OP")
    r = ops.add_parser("recover", help="ZhiXi weight_diff recover: tuned = base + diff")
    r.add_argument("--base", required=True, help="original LLaMA folder")
    r.add_argument("--diff", required=True, help="published diff folder")
    r.set_defaults(func=cmd_recover)
    a = ops.add_parser("apply-delta", help="FastChat/Ziya apply_delta: base + delta (vocab may grow)")
    a.add_argument("--base", required=True, help="original LLaMA folder")
    a.add_argument("--delta", required=True, help="the published delta folder (FastChat / Ziya)")
    a.set_defaults(func=cmd_apply_delta)
    m = ops.add_parser("make-diff", help="diff = tuned - base, float32 (the reverse of recover)")
    m.add_argument("--base", required=True, help="original LLaMA folder")
    m.add_argument("--tuned", required=True, help="the fine-tuned folder to express as a diff")
    m.set_defaults(func=cmd_make_diff)
    for p in (r, a):
        p.add_argument("--fp16", action="store_true", help="store float16 (computed in float32)")
    lo = ops.add_parser("merge-lora", help="merge a peft LoRA adapter into its base")
    lo.add_argument("--base", required=True, help="base model folder the adapter was trained on")
    lo.add_argument("--lora", required=True, help="peft LoRA adapter folder")
    lo.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16")
    lo.set_defaults(func=cmd_merge_lora)
    dq = ops.add_parser("dequantize", help="GPTQ / AWQ 4-bit folder -> bf16 safetensors folder (e.g. "
                                           "GPTQ act-order with groups, which vLLM refuses)")
    dq.add_argument("src", help="quantized model folder")
    dq.add_argument("--dtype", default="bfloat16", help="bfloat16 | float16 | float32")
    dq.set_defaults(func=cmd_dequantize)
    qz = ops.add_parser("quantize", help="merged model folder -> GPTQ / AWQ 4-bit folder (gptqmodel, "
                                         "the 'quantize' extra), calibrated on rendered IE prompts")
    qz.add_argument("src", help="full-precision model folder (merged)")
    qz.add_argument("--method", choices=("gptq", "awq"), default="gptq", help="quantization method")
    qz.add_argument("--bits", type=int, choices=(4, 8), default=4, help="bits per weight")
    qz.add_argument("--group-size", type=int, default=None,
                    help="input rows per scale (-1: per channel; default: the largest of 128, 64, 32 "
                         "that divides every layer's input, which vLLM needs to load it)")
    qz.add_argument("--calibration", default=None,
                    help="JSONL of IE records to render calibration prompts from (default: the "
                         "shipped training data)")
    qz.add_argument("--samples", type=arg_types.positive_int, default=256, help="calibration prompts")
    qz.set_defaults(func=cmd_quantize)
    for p, default in ((r, "alpaca"), (a, "ziya"), (lo, "the base's, else inferred")):
        p.add_argument("--prompt-format", default=None,
                       help=f"prompt format written to OUT/ie_service.json for `serve --model OUT` "
                            f"(default: {default})")
    for p in (r, a, m, lo, dq, qz):
        p.add_argument("--out", required=True, help="output folder (must not exist)")
        p.add_argument("--force", action="store_true", help="replace an existing output folder")
    h = ops.add_parser("md5", help="write or check an MD5 manifest (md5sum format)")
    h.add_argument("dir", type=arg_types.existing_dir, help="model folder")
    h.add_argument("--expect", type=arg_types.existing_file,
                   help="manifest to check against (exit 1 on any mismatch)")
    h.add_argument("--write", type=arg_types.output_file,
                   help="where to write the manifest (default DIR/md5sums.txt)")
    h.set_defaults(func=cmd_md5)
