"""GPTQ / AWQ 4-bit (or 8-bit) checkpoints → plain bf16 safetensors, tensor by tensor.

For what vLLM will not load (GPTQ act-order with groups, ``desc_act=True``, refused by vLLM
0.32) or where a full-precision model is wanted. Each output shard mirrors one input file;
peak memory is about one output shard plus one layer.

Formats (the packing the kernels read):

- GPTQ (AutoGPTQ / GPTQModel ``checkpoint_format: gptq``): ``qweight`` int32
  ``[in/pack, out]`` packed along the input dimension (value ``j`` of a word at bits
  ``j*bits``), ``qzeros`` int32 ``[groups, out/pack]`` packed along the output dimension and
  stored minus one, ``scales`` ``[groups, out]``, ``g_idx`` ``[in]`` the group of each input
  row (a permutation under act-order). ``W[o, i] = scales[g, o] * (q[i, o] - zero[g, o])`` with
  ``g = g_idx[i]``; ``gptq_v2`` stores the zeros as they are.
- AWQ (AutoAWQ GEMM): ``qweight`` int32 ``[in, out/pack]`` and ``qzeros`` ``[groups, out/pack]``
  packed along the output dimension in the order 0 2 4 6 1 3 5 7, ``scales`` ``[groups, out]``,
  ``W[o, i] = scales[i // group, o] * (q[i, o] - zero[i // group, o])``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..sidecar import SIDECAR  # the prompt-format note beside the weights
from .shards import SIDE_FILES, Checkpoint, WeightsError, atomic_output, copy_side_files, save_shard, write_index

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AWQ's interleave of 8 4-bit values in an int32
QUANT_PARTS = ("qweight", "qzeros", "scales", "g_idx", "bias")


@dataclass(frozen=True)
class QuantSpec:
    """What a quantized folder says about itself."""

    method: str  # "gptq" | "awq"
    bits: int
    group_size: int  # -1: one group over the whole input dimension
    desc_act: bool = False
    sym: bool = True
    zeros_stored_minus_one: bool = True  # GPTQ v1 checkpoints
    where: str = "config.json"

    @property
    def pack(self) -> int:
        return 32 // self.bits


def read_spec(folder: str | Path) -> QuantSpec:
    """The quantization of a folder: ``quantization_config`` in config.json, else
    ``quantize_config.json`` (older GPTQ folders); :class:`WeightsError` when neither says
    GPTQ or AWQ."""
    folder = Path(folder)
    raw, where = None, ""
    cfg = folder / "config.json"
    if cfg.is_file():
        raw, where = json.loads(cfg.read_text()).get("quantization_config"), "config.json"
    if not raw and (folder / "quantize_config.json").is_file():
        raw, where = json.loads((folder / "quantize_config.json").read_text()), "quantize_config.json"
        raw.setdefault("quant_method", "gptq")
    if not isinstance(raw, dict):
        raise WeightsError(f"{folder} is not a quantized checkpoint (no quantization_config in config.json "
                           f"and no quantize_config.json)")
    method = str(raw.get("quant_method", "")).lower()
    bits = int(raw.get("bits", raw.get("w_bit", 4)))
    group = int(raw.get("group_size", raw.get("q_group_size", 128)))
    if method not in ("gptq", "awq"):
        raise WeightsError(f"{folder}: quantization method {method!r} is not GPTQ or AWQ")
    if 32 % bits or bits not in (2, 4, 8):
        raise WeightsError(f"{folder}: {bits}-bit weights are not supported (2, 4 or 8)")
    if method == "awq":
        version = str(raw.get("version", "gemm")).lower()
        if version != "gemm":
            raise WeightsError(f"{folder}: AWQ version {version!r} is not supported (only GEMM)")
        if bits != 4:
            raise WeightsError(f"{folder}: AWQ with {bits} bits is not supported (4)")
        return QuantSpec("awq", bits, group, sym=not raw.get("zero_point", True),
                         zeros_stored_minus_one=False, where=where)
    fmt = str(raw.get("checkpoint_format", "gptq")).lower()
    if fmt not in ("gptq", "gptq_v2"):
        raise WeightsError(f"{folder}: GPTQ checkpoint_format {fmt!r} is not supported (gptq, gptq_v2)")
    return QuantSpec("gptq", bits, group, desc_act=bool(raw.get("desc_act", False)),
                     sym=bool(raw.get("sym", True)), zeros_stored_minus_one=fmt == "gptq", where=where)


def unpack_rows(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 ``[n/pack, m]`` → ``[n, m]`` values, value ``j`` of each word at bits ``j*bits``."""
    pack = 32 // bits
    shifts = torch.arange(0, 32, bits, dtype=torch.int32)
    vals = (packed.unsqueeze(1) >> shifts.view(1, pack, 1)) & ((1 << bits) - 1)
    return vals.reshape(packed.shape[0] * pack, packed.shape[1])


def unpack_cols(packed: torch.Tensor, bits: int, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """int32 ``[n, m/pack]`` → ``[n, m]``; ``order[k]`` is the column (within its block of
    ``pack``) whose value sits at bits ``k*bits`` (AWQ's interleave), default 0, 1, 2, ..."""
    pack = 32 // bits
    shifts = torch.arange(0, 32, bits, dtype=torch.int32)
    vals = (packed.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # [n, m/pack, pack], slot k
    if order is not None:
        inverse = [0] * pack
        for slot, column in enumerate(order):
            inverse[column] = slot
        vals = vals[..., inverse]
    return vals.reshape(packed.shape[0], packed.shape[1] * pack)


def dequantize_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                    g_idx: torch.Tensor | None, spec: QuantSpec) -> torch.Tensor:
    """float32 ``[out, in]`` weight of one GPTQ linear layer (act-order through ``g_idx``)."""
    q = unpack_rows(qweight, spec.bits)  # [in, out]
    in_features = q.shape[0]
    zeros = unpack_cols(qzeros, spec.bits)[:, : scales.shape[1]]  # [groups, out]
    if spec.zeros_stored_minus_one:
        zeros = zeros + 1
    if g_idx is None:
        group = spec.group_size if spec.group_size > 0 else in_features
        g_idx = torch.arange(in_features, dtype=torch.int64) // group
    g = g_idx.to(torch.int64)
    if g.numel() != in_features or int(g.max()) >= scales.shape[0] or int(g.min()) < 0:
        raise WeightsError(f"g_idx does not fit the layer ({g.numel()} rows, {scales.shape[0]} groups)")
    w = (q - zeros[g]).to(torch.float32) * scales[g].to(torch.float32)
    return w.t().contiguous()


def dequantize_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                   spec: QuantSpec) -> torch.Tensor:
    """float32 ``[out, in]`` weight of one AWQ (GEMM) linear layer."""
    q = unpack_cols(qweight, spec.bits, AWQ_ORDER)  # [in, out]
    zeros = unpack_cols(qzeros, spec.bits, AWQ_ORDER)  # [groups, out]
    group = spec.group_size if spec.group_size > 0 else q.shape[0]
    g = torch.arange(q.shape[0], dtype=torch.int64) // group
    w = (q - zeros[g]).to(torch.float32) * scales[g].to(torch.float32)
    return w.t().contiguous()


def _layer(ckpt: Checkpoint, prefix: str, spec: QuantSpec) -> torch.Tensor:
    qweight, qzeros, scales = (ckpt.get(f"{prefix}.{part}") for part in ("qweight", "qzeros", "scales"))
    if spec.method == "awq":
        return dequantize_awq(qweight, qzeros, scales, spec)
    # g_idx, where stored, is the truth (act-order permutes it); else groups run in order
    g_idx = ckpt.get(f"{prefix}.g_idx") if f"{prefix}.g_idx" in ckpt.where else None
    return dequantize_gptq(qweight, qzeros, scales, g_idx, spec)


def _plain_config(src: Path, out: Path, dtype: str) -> None:
    cfg = out / "config.json"
    if not cfg.is_file():
        raise WeightsError(f"{src} has no config.json")
    data = json.loads(cfg.read_text())
    data.pop("quantization_config", None)
    data["torch_dtype"] = dtype
    data.pop("dtype", None)
    cfg.write_text(json.dumps(data, indent=2))


DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def dequantize(src: str | Path, out: str | Path, *, dtype: str = "bfloat16", force: bool = False) -> Path:
    """Write ``out``: every quantized linear layer of ``src`` as a ``dtype`` weight, the other
    tensors converted to ``dtype`` (integers kept), config.json without
    ``quantization_config``, tokenizer files copied. Output appears only when complete."""
    src, out = Path(src), Path(out)
    if dtype not in DTYPES:
        raise WeightsError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    spec = read_spec(src)
    target = DTYPES[dtype]
    with Checkpoint(src) as ckpt, atomic_output(out, force) as tmp:
        prefixes = sorted(k[: -len(".qweight")] for k in ckpt.where if k.endswith(".qweight"))
        if not prefixes:
            raise WeightsError(f"{src}: no quantized layers (*.qweight) in the weights")
        owned = {key for p in prefixes for part in QUANT_PARTS if part != "bias"
                 if (key := f"{p}.{part}") in ckpt.where}
        weight_map: dict[str, str] = {}
        bar = tqdm(total=len(ckpt.where) - len(owned) + len(prefixes), desc="dequantize", unit="tensor")
        for i, path in enumerate(ckpt.files):
            tensors: dict[str, torch.Tensor] = {}
            for key in ckpt.keys_in(path):
                if key.endswith(".qweight"):
                    prefix = key[: -len(".qweight")]
                    tensors[f"{prefix}.weight"] = _layer(ckpt, prefix, spec).to(target)
                elif key not in owned:
                    t = ckpt.get(key)
                    tensors[key] = t.to(target) if t.is_floating_point() else t.clone()
                else:
                    continue
                bar.update()
            save_shard(tmp, tensors, i, len(ckpt.files), weight_map)
            del tensors
            ckpt.release()
        bar.close()
        write_index(tmp, weight_map, len(ckpt.files))
        copy_side_files([src], tmp, (*SIDE_FILES, SIDECAR))  # SIDECAR: the prompt format stays
        _plain_config(src, tmp, dtype)
    return out
