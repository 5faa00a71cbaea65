"""Merge a LoRA adapter into its base with peft (``merge_and_unload``) and save a folder
vLLM can serve (safetensors + tokenizer). Loads the whole model once (peft's way)."""

from __future__ import annotations

from pathlib import Path

from .shards import TOKENIZER_FILES, WeightsError, atomic_output, copy_side_files


def merge_lora(base: str | Path, lora: str | Path, out: str | Path, *, dtype: str = "float32",
               force: bool = False) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, lora = Path(base), Path(lora)
    if not (lora / "adapter_config.json").is_file():
        raise WeightsError(f"{lora} has no adapter_config.json: not a peft LoRA adapter folder")
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise WeightsError(f"unknown dtype {dtype!r}")
    with atomic_output(out, force) as tmp:
        model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch_dtype, low_cpu_mem_usage=True)
        merged = PeftModel.from_pretrained(model, lora).merge_and_unload()
        merged.save_pretrained(tmp, safe_serialization=True)
        copy_side_files([lora, base], tmp, names=TOKENIZER_FILES)
    return Path(out)
