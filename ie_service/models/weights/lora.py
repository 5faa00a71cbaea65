"""Merge a LoRA adapter into its base with peft (``merge_and_unload``) and save a folder
vLLM can serve (safetensors + tokenizer). Loads the whole model once (peft's way).

Both folders are checked before anything loads (adapter config, safetensors headers
against file sizes), and what transformers / peft still refuse is reported as a
:class:`WeightsError` naming the folder: one line, exit 2 on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import one_line
from .shards import TOKENIZER_FILES, WeightsError, atomic_output, check_safetensors, copy_side_files

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# what from_pretrained raises on a folder it cannot use (SafetensorError is an Exception
# subclass of its own: matched by name below)
_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, EOFError)


def _check_adapter(lora: Path) -> None:
    config_path = lora / "adapter_config.json"
    if not config_path.is_file():
        raise WeightsError(f"{lora} has no adapter_config.json: not a peft LoRA adapter folder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeightsError(f"{config_path}: not a JSON adapter config ({one_line(exc)})") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise WeightsError(f"{config_path}: not a peft adapter config (no peft_type)")
    weights = [lora / name for name in ADAPTER_WEIGHTS if (lora / name).is_file()]
    if not weights:
        raise WeightsError(f"{lora} has no {' or '.join(ADAPTER_WEIGHTS)}")
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors(path)


def _check_base(base: Path) -> None:
    if not base.is_dir():
        raise WeightsError(f"not a folder: {base}")
    if not (base / "config.json").is_file():
        raise WeightsError(f"{base} has no config.json: not a model folder")
    for path in sorted(base.glob("*.safetensors")):
        check_safetensors(path)


def _loading(what: Path, exc: BaseException) -> WeightsError:
    return WeightsError(f"{what}: cannot be loaded: {type(exc).__name__}: {one_line(exc)}")


def merged_format(base: Path, lora: Path, out: Path) -> tuple[str, str] | None:
    """The prompt format a merged folder keeps: the base's (or adapter's) ``ie_service.json``,
    else what the names and the merged folder's own files say; None without evidence."""
    from ..prompt_formats import NO_EVIDENCE, evidence_format, format_from_name
    from ..sidecar import read_sidecar

    for folder, what in ((base, "the base's"), (lora, "the adapter's")):
        sidecar = read_sidecar(folder) or {}
        if isinstance(sidecar.get("prompt_format"), str):
            return sidecar["prompt_format"], f"weights merge-lora (copied {what} ie_service.json)"
    for folder, what in ((lora, "adapter"), (base, "base")):
        fmt = format_from_name(str(folder))
        if fmt:
            return fmt, f"weights merge-lora (the {what} name {folder.name!r})"
    config = json.loads((out / "config.json").read_text(encoding="utf-8")) if (out / "config.json").is_file() else {}
    fmt, reason = evidence_format(out, config)
    if reason == NO_EVIDENCE:
        return None
    return fmt, f"weights merge-lora ({reason})"


def merge_lora(base: str | Path, lora: str | Path, out: str | Path, *, dtype: str = "float32",
               force: bool = False, prompt_format: str | None = None) -> Path:
    """Merge, then write ``ie_service.json`` (``prompt_format``, else :func:`merged_format`;
    the adapter manifest's ``answer_shape``)."""
    import torch

    from ..prompt_formats import check_format_name

    check_format_name(prompt_format)
    base, lora = Path(base), Path(lora)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise WeightsError(f"unknown dtype {dtype!r}")
    _check_adapter(lora)
    _check_base(base)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with atomic_output(out, force) as tmp:
        try:
            model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch_dtype, low_cpu_mem_usage=True)
        except Exception as exc:
            if isinstance(exc, _LOAD_ERRORS) or type(exc).__name__ == "SafetensorError":
                raise _loading(base, exc) from exc
            raise
        try:
            merged = PeftModel.from_pretrained(model, lora).merge_and_unload()
        except Exception as exc:
            if isinstance(exc, _LOAD_ERRORS) or type(exc).__name__ == "SafetensorError":
                raise _loading(lora, exc) from exc
            raise
        merged.save_pretrained(tmp, safe_serialization=True)
        copy_side_files([lora, base], tmp, names=TOKENIZER_FILES)
        from ..sidecar import write_sidecar

        if prompt_format:
            write_sidecar(tmp, prompt_format, "weights merge-lora --prompt-format")
        elif (found := merged_format(base, lora, tmp)) is not None:
            write_sidecar(tmp, *found)
        from ..sidecar import adapter_answer_shape, set_answer_shape

        if (shape := adapter_answer_shape(lora)) is not None:  # what the adapter was trained to write
            set_answer_shape(tmp, shape)
    return Path(out)
