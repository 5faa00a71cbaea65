"""LoRA adapters applied at run time (``serve --lora NAME=PATH``), beside the served model.

No vllm import here: the flags are parsed and the adapter folders checked when the config is
built (one-line usage error); :func:`lora_engine_kwargs` gives vLLM's arguments from
the adapters' ranks, and the engine (``vllm_engine``) makes one ``LoRARequest`` per adapter
and picks it per request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


class UnknownAdapter(InvalidRequest):
    """A request names an adapter that is not loaded (422, naming the loaded ones)."""


@dataclass(frozen=True)
class RuntimeAdapter:
    name: str
    path: Path
    rank: int
    version: str  # the manifest's "version", else the first 12 hex digits of the weights' md5


def _folder(path: Path) -> Path:
    """The adapter folder: ``path``, or ``path/adapter`` (a ``train fit`` / ``train run`` folder)."""
    if not (path / "adapter_config.json").is_file() and (path / "adapter" / "adapter_config.json").is_file():
        return path / "adapter"
    return path


def _version(folder: Path) -> str:
    for manifest in (folder / "manifest.json", folder.parent / "manifest.json"):
        if manifest.is_file():
            try:
                version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
            except (ValueError, AttributeError):
                version = None
            if version is not None:
                return str(version)
    from .weights.md5 import file_md5

    weights = next(folder / w for w in WEIGHTS if (folder / w).is_file())
    return "md5:" + file_md5(weights)[:12]


def read_adapter(name: str, path: str | Path) -> RuntimeAdapter:
    """Check one ``NAME=PATH``: a peft LoRA folder; ValueError (one line) when it is not."""
    if not NAME.match(name):
        raise ValueError(f"adapter name {name!r}: letters, digits, '.', '_' or '-' (at most 64)")
    folder = _folder(Path(path).expanduser())
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise ValueError(f"{name}={path}: no adapter_config.json (not a peft LoRA adapter folder)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{config_path}: not JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise ValueError(f"{config_path}: not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    if not any((folder / w).is_file() for w in WEIGHTS):
        raise ValueError(f"{name}={path}: no {' or '.join(WEIGHTS)}")
    rank = max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])
    return RuntimeAdapter(name, folder.resolve(), rank, _version(folder))


def parse_lora(specs: Iterable[str]) -> list[RuntimeAdapter]:
    """``["NAME=PATH", ...]`` → checked adapters; ValueError for a malformed or repeated one."""
    out: dict[str, RuntimeAdapter] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{spec!r}: expected NAME=PATH")
        if name in out:
            raise ValueError(f"adapter name {name!r} given twice")
        out[name] = read_adapter(name, path)
    return list(out.values())


def check_adapter(name: str | None, loaded: Iterable[str]) -> None:
    """UnknownAdapter unless ``name`` is None or one of ``loaded``."""
    if name is None:
        return
    loaded = sorted(loaded)
    if name not in loaded:
        known = (f"loaded: {', '.join(loaded)}" if loaded
                 else "none are loaded (start the service with --lora NAME=PATH)")
        raise UnknownAdapter(f"unknown adapter {name!r}; {known}")


VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values


def lora_engine_kwargs(adapters: Sequence[RuntimeAdapter]) -> dict[str, Any]:
    """vLLM's LoRA arguments for ``adapters`` (none when there are none)."""
    if not adapters:
        return {}
    rank = max(a.rank for a in adapters)
    fits = [r for r in VLLM_RANKS if r >= rank]
    if not fits:
        raise ValueError(f"adapter rank {rank} is over vLLM's largest, {VLLM_RANKS[-1]}")
    return {"enable_lora": True, "max_loras": len(adapters), "max_lora_rank": fits[0]}
