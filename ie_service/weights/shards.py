"""Reading checkpoint folders tensor by tensor, writing output shards atomically."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

INDEX = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                   "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
                   "chat_template.jinja")
SIDE_FILES = ("config.json", "generation_config.json", *TOKENIZER_FILES)


class WeightsError(RuntimeError):
    """A checkpoint problem the user must fix (missing files, shapes, dtypes)."""


class Checkpoint:
    """Lazy view of a model folder: which tensor lives in which file, loaded on demand.
    safetensors files are memory-mapped; ``.bin`` shards are loaded with ``mmap=True``.
    Pages read through a mapping count as resident until it is closed: call
    :meth:`release` after each output shard so memory stays near one shard."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise WeightsError(f"not a folder: {self.folder}")
        self.files = sorted(p for p in self.folder.iterdir()
                            if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        safetensors = [p for p in self.files if p.suffix == ".safetensors"]
        self.files = safetensors or self.files  # prefer safetensors when both exist
        if not self.files:
            raise WeightsError(f"no weight files (*.safetensors, *.bin) in {self.folder}")
        self._stack = ExitStack()
        self._handles: dict[Path, object] = {}
        self._bins: dict[Path, dict[str, torch.Tensor]] = {}
        self.where: dict[str, Path] = {}
        for path in self.files:
            for key in self._keys(path):
                self.where[key] = path
        self.release()

    def _open(self, path: Path):
        if path.suffix == ".safetensors":
            if path not in self._handles:
                self._handles[path] = self._stack.enter_context(safe_open(str(path), "pt"))
            return self._handles[path]
        if path not in self._bins:
            self._bins.clear()  # keep one .bin shard mapped at a time
            self._bins[path] = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return self._bins[path]

    def _keys(self, path: Path) -> list[str]:
        handle = self._open(path)
        return list(handle.keys())

    def keys_in(self, path: Path) -> list[str]:
        return [k for k, p in self.where.items() if p == path]

    def get(self, key: str) -> torch.Tensor:
        if key not in self.where:
            raise WeightsError(f"tensor {key!r} is missing from {self.folder}")
        handle = self._open(self.where[key])
        return handle.get_tensor(key) if hasattr(handle, "get_tensor") else handle[key]

    def release(self) -> None:
        """Unmap every open file (they reopen on the next :meth:`get`)."""
        self._stack.close()
        self._stack = ExitStack()
        self._handles.clear()
        self._bins.clear()

    def close(self) -> None:
        self.release()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shard_name(i: int, n: int) -> str:
    return "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"


@contextmanager
def atomic_output(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; it becomes ``out`` only when the block ends
    without error, so a failed run never leaves a folder that looks complete."""
    out = Path(out)
    if out.exists() and not force:
        raise WeightsError(f"{out} exists; pass --force to replace it")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_side_files(sources: list[Path], out: Path, names: tuple[str, ...] = SIDE_FILES) -> None:
    """config / tokenizer files: the first source that has each wins."""
    for name in names:
        for src in sources:
            if (src / name).is_file():
                shutil.copy2(src / name, out / name)
                break


def save_shard(out: Path, tensors: dict[str, torch.Tensor], index: int, total: int,
               weight_map: dict[str, str]) -> None:
    """Save one output shard and record its tensors in the weight map."""
    name = shard_name(index, total)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / name), metadata={"format": "pt"})
    for key in tensors:
        weight_map[key] = name


def write_index(out: Path, weight_map: dict[str, str], total: int) -> None:
    if total > 1:
        size = sum((out / f).stat().st_size for f in set(weight_map.values()))
        (out / INDEX).write_text(json.dumps(
            {"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
