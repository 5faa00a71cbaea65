"""Calibration texts for ``weights quantize``: IE prompts rendered as the engine renders them
for the model being quantized (the training sources, test-set sentences left out, in the
model's own prompt format), or the ``prompt`` field of a JSONL of rendered examples
(``ie-service train data`` output)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from ..evaluation.datasets import data_dir
from ..models.weights.shards import WeightsError
from .files import renderer


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
    path = Path(source) if source else data_dir() / "train"
    if path.is_file():
        prompts = _read_prompts_file(path)
    elif path.is_dir():
        from .examples import build_examples
        from .sources import by_name, training_splits

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
