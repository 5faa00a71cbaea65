"""tuned = base + diff (ZhiXi ``weight_diff recover``, FastChat/Ziya ``apply_delta``) and the
reverse, shard by shard: peak memory is about one output shard plus one base tensor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from .shards import (
    Checkpoint,
    WeightsError,
    atomic_output,
    copy_side_files,
    save_shard,
    write_index,
)

EXPANDABLE = ("embed_tokens.weight", "lm_head.weight")  # rows grow when a vocab is extended


def _check_float(name: str, t: torch.Tensor, where: str) -> None:
    if not t.is_floating_point():
        raise WeightsError(f"{where} tensor {name!r} has dtype {t.dtype}; expected a float dtype")


def _add(name: str, delta: torch.Tensor, base: torch.Tensor, allow_vocab_growth: bool) -> torch.Tensor:
    """delta + base in float32. With ``allow_vocab_growth`` (apply-delta), an embedding or
    lm_head delta may have more rows than the base: the base is added to the first rows."""
    _check_float(name, delta, "diff")
    _check_float(name, base, "base")
    out = delta.to(torch.float32).clone()
    if delta.shape == base.shape:
        return out.add_(base.to(torch.float32))
    grows = (allow_vocab_growth and name.endswith(EXPANDABLE) and delta.dim() == base.dim() == 2
             and delta.shape[1] == base.shape[1] and delta.shape[0] > base.shape[0])
    if not grows:
        raise WeightsError(f"shape mismatch for {name!r}: diff {tuple(delta.shape)} vs base {tuple(base.shape)}")
    out[: base.shape[0]].add_(base.to(torch.float32))
    return out


def _map_shards(base_dir: Path, other_dir: Path, out: Path, force: bool, desc: str,
                op: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Write ``op(name, other[name], base[name])`` for every tensor of ``other``, mirroring
    its sharding; the mapped files are released after each output shard."""
    with Checkpoint(base_dir) as base, Checkpoint(other_dir) as other, atomic_output(out, force) as tmp:
        missing = sorted(set(other.where) - set(base.where))
        if missing:
            raise WeightsError(f"base lacks {len(missing)} tensors of {other_dir}, e.g. {missing[:3]}")
        weight_map: dict[str, str] = {}
        bar = tqdm(total=len(other.where), desc=desc, unit="tensor")
        for i, path in enumerate(other.files):
            tensors = {}
            for key in other.keys_in(path):
                tensors[key] = op(key, other.get(key), base.get(key))
                bar.update()
            save_shard(tmp, tensors, i, len(other.files), weight_map)
            del tensors
            base.release()
            other.release()
        bar.close()
        write_index(tmp, weight_map, len(other.files))
        copy_side_files([other_dir, base_dir], tmp)


def _combine(base_dir: Path, diff_dir: Path, out: Path, *, fp16: bool, force: bool,
             allow_vocab_growth: bool, desc: str) -> Path:
    """base + diff for every tensor of the diff."""
    dtype = torch.float16 if fp16 else torch.float32
    _map_shards(base_dir, diff_dir, out, force, desc,
                lambda key, d, b: _add(key, d, b, allow_vocab_growth).to(dtype))
    _set_config_dtype(out, "float16" if fp16 else "float32")
    return out


def _set_config_dtype(folder: Path, dtype: str) -> None:
    import json

    cfg = folder / "config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text())
        data["torch_dtype"] = dtype
        cfg.write_text(json.dumps(data, indent=2))


def recover(base: str | Path, diff: str | Path, out: str | Path, *, fp16: bool = False,
            force: bool = False, prompt_format: str | None = None) -> Path:
    """ZhiXi ``weight_diff recover``: tuned = base + diff (float32; ``fp16`` stores float16).
    Writes ``ie_service.json``: ZhiXi's Alpaca format unless ``prompt_format`` says otherwise."""
    _check_format(prompt_format)
    done = _combine(Path(base), Path(diff), Path(out), fp16=fp16, force=force,
                    allow_vocab_growth=False, desc="recover")
    _write_format(done, prompt_format, "alpaca", "weights recover (ZhiXi / KnowLM)")
    return done


def apply_delta(base: str | Path, delta: str | Path, out: str | Path, *, fp16: bool = False,
                force: bool = False, prompt_format: str | None = None) -> Path:
    """FastChat / Ziya ``apply_delta``: target = base + delta, where the delta may extend the
    vocabulary (extra embedding / lm_head rows, taken from the delta as they are). Writes
    ``ie_service.json``: Ziya's format unless ``prompt_format`` says otherwise."""
    _check_format(prompt_format)
    done = _combine(Path(base), Path(delta), Path(out), fp16=fp16, force=force,
                    allow_vocab_growth=True, desc="apply-delta")
    _write_format(done, prompt_format, "ziya", "weights apply-delta (Ziya)")
    return done


def _check_format(name: str | None) -> None:
    from ..prompt_formats import check_format_name

    check_format_name(name)


def _write_format(folder: Path, chosen: str | None, default: str, source: str) -> None:
    from ..sidecar import write_sidecar

    if chosen:
        write_sidecar(folder, chosen, f"{source.split(' (')[0]} --prompt-format")
    else:
        write_sidecar(folder, default, source)


def make_diff(base: str | Path, tuned: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """diff = tuned - base in float32 (used to publish diffs, and by the tests).

    ``recover`` of it gives the tuned weights back bit for bit wherever float32 can hold
    that: always for fine-tuning-sized changes (the difference of two floats within a factor
    of two is exact); a weight much smaller than its base value may differ in the last bit."""

    def subtract(key: str, tuned_t: torch.Tensor, base_t: torch.Tensor) -> torch.Tensor:
        _check_float(key, tuned_t, "tuned")
        if tuned_t.shape != base_t.shape:
            raise WeightsError(
                f"shape mismatch for {key!r}: tuned {tuple(tuned_t.shape)} vs base {tuple(base_t.shape)}")
        return tuned_t.to(torch.float32) - base_t.to(torch.float32)

    _map_shards(Path(base), Path(tuned), Path(out), force, "make-diff", subtract)
    return Path(out)
