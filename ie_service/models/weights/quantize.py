"""A merged full-precision model → a GPTQ or AWQ 4-bit folder vLLM serves, with GPTQModel
(the optional extra ``quantize``), calibrated on the service's own rendered IE prompts.

Calibration prompts come from the training sources (``ie_service.training``: the same
rendering code path as serving, in the model's own prompt format, test-set sentences left
out), or from a JSONL of rendered examples (``ie-service train data`` output, its ``prompt``
field). GPTQ is written with ``desc_act=False`` (vLLM 0.32 refuses act-order with groups)
and symmetric zeros, in the ``gptq`` checkpoint format.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from pathlib import Path

from ..folder import text_config
from ..quantization import GROUP_SIZES, fitting_group, group_misfits
from ..sidecar import SIDECAR
from .shards import TOKENIZER_FILES, WeightsError, atomic_output, copy_side_files

MISSING = ("weights quantize needs GPTQModel, which is not installed: pip install 'ie-service[quantize]' "
           "(gptqmodel pins numpy==2.2.6; install it in its own environment if that clashes)")


def _read_prompts_file(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    prompts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise WeightsError(f"{path}:{n}: not JSON") from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise WeightsError(f"{path}:{n}: no 'prompt' string (expected `ie-service train data` rows)")
            prompts.append(row["prompt"])
    return prompts


def calibration_prompts(model: str | Path, source: str | Path | None = None, samples: int = 256,
                        seed: int = 0) -> list[str]:
    """``samples`` IE prompts rendered as the engine renders them for ``model``: from a JSONL
    of rendered examples, or built from a folder laid out like ``shared/data/train``
    (default: the data folder's ``train``)."""
    from ...evaluation.datasets import data_dir

    path = Path(source) if source else data_dir() / "train"
    if path.is_file():
        prompts = _read_prompts_file(path)
    elif path.is_dir():
        from ...training.data import renderer
        from ...training.examples import build_examples
        from ...training.sources import by_name, training_splits

        sources = [s for s in by_name(None) if all((path / f).exists() for f in s.files)]
        if not sources:
            raise WeightsError(f"{path}: no training source files (laid out like shared/data/train)")
        examples, _ = build_examples(path, sources, renderer(str(model), "auto"), seed=seed, variants=1,
                                     splits=training_splits(path, sources))
        prompts = [e["prompt"] for e in examples]
    else:
        raise WeightsError(f"no calibration data at {path} (a JSONL of rendered examples or a training folder)")
    if not prompts:
        raise WeightsError(f"{path}: no calibration prompts")
    rng = random.Random(seed)
    return rng.sample(prompts, min(samples, len(prompts)))


def quantize(src: str | Path, out: str | Path, *, method: str = "gptq", bits: int = 4,
             group_size: int | None = None, calibration: str | Path | None = None, samples: int = 256,
             force: bool = False) -> Path:
    """Quantize ``src`` into ``out`` (appears only when complete). ``group_size`` None: the
    largest common size that divides every layer's input (128 for most LLaMA shapes)."""
    src, out = Path(src), Path(out)
    if method not in ("gptq", "awq"):
        raise WeightsError(f"--method must be gptq or awq, not {method!r}")
    if not (src / "config.json").is_file():
        raise WeightsError(f"{src} is not a model folder (no config.json)")
    config = json.loads((src / "config.json").read_text())
    if "quantization_config" in config:
        raise WeightsError(f"{src} is already quantized; quantize a full-precision (merged) folder")
    text = text_config(config)
    fits = fitting_group(text)
    if group_size is None:
        group_size = fits or -1
        sizes = ", ".join(map(str, GROUP_SIZES))
        print(f"group size {group_size} (the largest of {sizes} that divides every layer's input"
              f"{'' if fits else ': none does, so per channel'})", file=sys.stderr)
    if misfits := group_misfits(text, group_size):
        raise WeightsError(f"--group-size {group_size} does not divide {', '.join(misfits)} of {src}: vLLM could "
                           f"not load the result" + (f"; use --group-size {fits}" if fits else "; use --group-size -1"))
    # GPTQModel 7.6 gives its model loader 2 CPU workers but the CPU pool (cores + 1) // 2:
    # on a 2-core host that refuses to start ("requests 2 workers but parent 'cpu' only has 1")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    try:
        from gptqmodel import AWQConfig, GPTQConfig, GPTQModel
    except ImportError:
        raise WeightsError(MISSING) from None
    prompts = calibration_prompts(src, calibration, samples)
    if method == "gptq":
        config = GPTQConfig(bits=bits, group_size=group_size, desc_act=False, sym=True)
    else:
        config = AWQConfig(bits=bits, group_size=group_size)
    with atomic_output(out, force) as tmp:
        model = GPTQModel.load(str(src), config, device="cpu")
        model.quantize(prompts, batch_size=1)
        model.save(str(tmp))
        del model
        # the source's own tokenizer files, not the converted ones the library saves
        # (a sentencepiece folder must keep tokenizer.model and no tokenizer.json it never had),
        # and its prompt-format note (a recovered ZhiXi stays Alpaca without a flag)
        for name in TOKENIZER_FILES:
            (tmp / name).unlink(missing_ok=True)
        copy_side_files([src], tmp, (*TOKENIZER_FILES, SIDECAR))
    return out
