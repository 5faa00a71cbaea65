"""Reading checkpoint folders tensor by tensor, writing output shards atomically."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ...errors import UserInputError, one_line

INDEX = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                   "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
                   "chat_template.jinja")
SIDE_FILES = ("config.json", "generation_config.json", *TOKENIZER_FILES)


class WeightsError(UserInputError, RuntimeError):
    """A checkpoint problem the user must fix (missing files, shapes, dtypes, unreadable
    or truncated files); the CLI prints it as one line and exits 2."""


def check_safetensors(path: Path) -> None:
    """Read a safetensors header and check it against the file size, without loading a
    tensor: random bytes, a truncated download or a wrong format raise :class:`WeightsError`
    naming the file (safetensors' own errors say neither which file nor why)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 * 1024**2:
            raise WeightsError(f"{path}: not a safetensors file, or truncated (header of {n} bytes "
                               f"in a file of {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WeightsError(f"{path}: not a safetensors file (the header is not JSON)") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: not a safetensors file (the header is not an object)")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1]):
            raise WeightsError(f"{path}: tensor {name!r} has no valid data_offsets")
        if offsets[1] > data:
            raise WeightsError(f"{path}: truncated: tensor {name!r} ends at byte {offsets[1]} of the data "
                               f"but the file holds {data} bytes of data")


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
        self._checked: set[Path] = set()
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
                if path not in self._checked:
                    check_safetensors(path)
                    self._checked.add(path)
                try:
                    self._handles[path] = self._stack.enter_context(safe_open(str(path), "pt"))
                except Exception as exc:  # SafetensorError and friends
                    raise WeightsError(f"{path}: unreadable safetensors file: {one_line(exc)}") from None
            return self._handles[path]
        if path not in self._bins:
            self._bins.clear()  # keep one .bin shard mapped at a time
            try:
                self._bins[path] = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            except Exception as exc:  # random bytes, truncated zip, pickle that is not tensors
                raise WeightsError(f"{path}: unreadable PyTorch weights file: {one_line(exc)}") from None
            if not isinstance(self._bins[path], dict):
                raise WeightsError(f"{path}: not a state dict (a {type(self._bins[path]).__name__})")
        return self._bins[path]

    def _keys(self, path: Path) -> list[str]:
        handle = self._open(path)
        return list(handle.keys())

    def keys_in(self, path: Path) -> list[str]:
        return [k for k, p in self.where.items() if p == path]

    def get(self, key: str) -> torch.Tensor:
        if key not in self.where:
            raise WeightsError(f"tensor {key!r} is missing from {self.folder}")
        path = self.where[key]
        handle = self._open(path)
        try:
            tensor = handle.get_tensor(key) if hasattr(handle, "get_tensor") else handle[key]
        except Exception as exc:
            raise WeightsError(f"{path}: cannot read tensor {key!r}: {one_line(exc)}") from None
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{path}: {key!r} is not a tensor (a {type(tensor).__name__})")
        return tensor

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


CLEANUP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM / SIGHUP raise SystemExit (in the main thread) so the
    ``finally`` clauses that remove partial output run; SIGINT already raises
    KeyboardInterrupt. Handlers are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in CLEANUP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, None):  # keep a handler someone else installed
            previous[sig] = current
            signal.signal(sig, _exit_on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def atomic_output(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` (``.<name>.partial-<pid>``); it becomes
    ``out`` only when the block ends without error, so a failed run never leaves a folder
    that looks complete. The temporary folder is removed on errors and on SIGTERM, SIGHUP
    and Ctrl-C too."""
    out = Path(out)
    if out.exists() and not force:
        raise WeightsError(f"{out} exists; pass --force to replace it")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    with _signals_raise():
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
