"""Tiny GPTQ / AWQ checkpoints made here, packed with vLLM's own reference packers
(``vllm.model_executor.layers.quantization.utils.quant_utils``), so the dequantizer is checked
against code it does not share. Round-to-nearest quantization, not GPTQ's error feedback: the
format is what matters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _quantizable(name: str) -> bool:
    return name.endswith(".weight") and any(f".{p}." in name for p in LINEARS)


def gptq_layer(w_out_in: torch.Tensor, group: int, act_order: bool, seed: int = 0):
    """(packed tensors, the float weight they stand for [out, in]) for one linear layer."""
    from vllm.model_executor.layers.quantization.utils.quant_utils import gptq_pack, pack_cols, quantize_weights
    from vllm.scalar_type import scalar_types

    w = w_out_in.t().to(torch.float32).contiguous()  # [in, out] as GPTQ stores it
    k, n = w.shape
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed)) if act_order else torch.arange(k)
    inverse = torch.argsort(perm)
    ref, q, s, _ = quantize_weights(w[perm], scalar_types.uint4b8, group)  # groups over permuted rows
    ref, q = ref[inverse], q[inverse]
    g_idx = (torch.arange(k) // group)[inverse].to(torch.int32)  # group of each original row
    zeros = torch.full((k // group, n), 7, dtype=torch.int32)  # symmetric: 8, stored minus one
    parts = {"qweight": gptq_pack(q, 4, k, n), "qzeros": pack_cols(zeros, 4, k // group, n),
             "scales": s.to(torch.float16), "g_idx": g_idx}
    return parts, ref.t().contiguous()


def awq_layer(w_out_in: torch.Tensor, group: int):
    from vllm.model_executor.layers.quantization.utils.quant_utils import awq_pack, quantize_weights
    from vllm.scalar_type import scalar_types

    w = w_out_in.t().to(torch.float32).contiguous()
    k, n = w.shape
    ref, q, s, zp = quantize_weights(w, scalar_types.uint4, group, zero_points=True)
    parts = {"qweight": awq_pack(q, 4, k, n), "qzeros": awq_pack(zp, 4, k // group, n),
             "scales": s.to(torch.float16)}
    return parts, ref.t().contiguous()


def quantize_folder(src: Path, dst: Path, method: str, group: int = 32, act_order: bool = False,
                    config_in: str = "config.json") -> dict[str, torch.Tensor]:
    """Write a 4-bit ``method`` copy of the bf16 folder ``src``; return the float weights the
    packed layers stand for (what a correct dequantizer must give back)."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(src / "model.safetensors"))
    out, refs = {}, {}
    for i, (name, t) in enumerate(sorted(tensors.items())):
        if not _quantizable(name):
            out[name] = t.to(torch.float16)
            continue
        prefix = name[: -len(".weight")]
        parts, ref = (gptq_layer(t, group, act_order, seed=i) if method == "gptq" else awq_layer(t, group))
        for part, value in parts.items():
            out[f"{prefix}.{part}"] = value.contiguous()
        refs[name] = ref
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["torch_dtype"] = "float16"
    if method == "gptq":
        quant = {"quant_method": "gptq", "bits": 4, "group_size": group, "desc_act": act_order,
                 "sym": True, "checkpoint_format": "gptq", "lm_head": False}
    else:
        quant = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True,
                 "version": "gemm"}
    if config_in == "config.json":
        config["quantization_config"] = quant
    else:
        (dst / "quantize_config.json").write_text(json.dumps(quant))
    (dst / "config.json").write_text(json.dumps(config, indent=1))
    for f in src.iterdir():
        if f.name not in ("config.json", "model.safetensors") and f.is_file():
            shutil.copy(f, dst / f.name)
    return refs
