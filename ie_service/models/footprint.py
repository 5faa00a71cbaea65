"""What a model folder needs in memory in one worker, read from its ``config.json`` and
weight files (no torch): the weights at the dtype it runs in, and the KV cache per token."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "fp8": 1}


@dataclass(frozen=True)
class ModelFootprint:
    """Memory a model needs in one worker: weights, and KV cache bytes per token."""

    weights_bytes: int = 0
    kv_bytes_per_token: int = 0

    @classmethod
    def of(cls, model_path: str | Path, dtype: str, tensor_parallel_size: int = 1,
           quantized: bool = False) -> "ModelFootprint":
        """From the folder's ``config.json`` and weight files, at ``dtype``, the dtype the
        engine will run in (``auto``: as stored): an fp32 folder run in bf16 needs half its
        file size. ``quantized`` (GPTQ / AWQ): the packed integer tensors stay as they are,
        so the files count as they are. Zeros when unknown (a hub id, an odd layout): then
        only the cache size itself is checked."""
        folder = Path(model_path)
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(config, dict):
            return cls()
        config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
        stored = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
        stored_bytes = _DTYPE_BYTES.get(stored, 2)
        run_bytes = _DTYPE_BYTES.get(dtype, stored_bytes)  # "auto": as stored
        files = [p for p in folder.glob("*.safetensors")] or [p for p in folder.glob("*.bin")]
        weights = sum(p.stat().st_size for p in files if p.is_file())
        if not quantized:
            weights = weights * run_bytes // stored_bytes
        weights //= max(1, tensor_parallel_size)
        try:
            layers = int(config["num_hidden_layers"])
            heads = int(config["num_attention_heads"])
            kv_heads = int(config.get("num_key_value_heads") or heads)
            head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return cls(weights_bytes=weights)
        kv_heads_here = max(1, math.ceil(kv_heads / max(1, tensor_parallel_size)))
        return cls(weights_bytes=weights, kv_bytes_per_token=2 * layers * kv_heads_here * head_dim * run_bytes)
