"""Tiny model folders in each family's published layout, built here (no downloads).

2-layer LLaMA models with random weights, the embedded model's tokenizer files (from
``prepare-model --base``), and the side files each family ships: no chat template for
OneKE / Ziya / ZhiXi, Ziya's ``<human>`` / ``<bot>`` tokens, a ZhiXi folder recovered from
a diff with ``weights recover``, GPTQ folders whose config lives only in
``quantize_config.json`` (as AutoGPTQ / TheBloke publish them), an AWQ (GEMM) folder.

The 4-bit packers (:func:`pack_gptq`, :func:`pack_awq`) and their inverses write the
standard layouts, so other tests can reuse them:

- GPTQ (AutoGPTQ ``checkpoint_format gptq``): ``qweight`` int32 [in/8, out], 8 nibbles
  along the input dimension, low bits first; ``qzeros`` int32 [groups, out/8], packed along
  the output dimension and stored minus one; ``scales`` fp16 [groups, out]; ``g_idx`` int32
  [in], the group of each input channel (a permutation's groups with act-order);
  ``w[k, n] = scales[g_idx[k], n] * (q[k, n] - (qzeros[g_idx[k], n] + 1))``.
- AWQ GEMM (AutoAWQ): ``qweight`` int32 [in, out/8] and ``qzeros`` int32 [groups, out/8],
  nibbles along the output dimension in the order 0 2 4 6 1 3 5 7; ``scales`` fp16
  [groups, out]; ``w[k, n] = scales[k // g, n] * (q[k, n] - z[k // g, n])``.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
QUANTIZED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # packed nibble i holds column AWQ_ORDER[i] of each 8


@functools.lru_cache(maxsize=1)
def base_model_dir() -> Path:
    """The embedded base model folder (converted once, then cached)."""
    out = subprocess.run([sys.executable, "-m", "ie_service.cli", "prepare-model", "--base"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return Path(out)


# --- plain folders --------------------------------------------------------------------------

def _copy_tokenizer(dst: Path, *, chat_template: bool, extra_tokens: tuple[str, ...] = ()) -> int:
    """Copy the embedded tokenizer, without its chat template unless asked; add tokens.
    Returns the tokenizer's size."""
    from tokenizers import AddedToken, Tokenizer

    src = base_model_dir()
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, dst / name)
    if chat_template and (src / "chat_template.jinja").is_file():
        shutil.copy2(src / "chat_template.jinja", dst / "chat_template.jinja")
    config = json.loads((dst / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not chat_template:
        config.pop("chat_template", None)
    tok = Tokenizer.from_file(str(dst / "tokenizer.json"))
    if extra_tokens:
        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in extra_tokens])
        tok.save(str(dst / "tokenizer.json"))
    (dst / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")
    return tok.get_vocab_size(with_added_tokens=True)


def llama_config(vocab_size: int, *, hidden: int = 128, layers: int = 2, heads: int = 2, kv_heads: int = 1,
                 intermediate: int = 256, max_positions: int = 2048, dtype: str = "float32", **extra) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
            "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "head_dim": hidden // heads, "vocab_size": vocab_size,
            "max_position_embeddings": max_positions, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
            "torch_dtype": dtype, **extra}


def random_llama_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """LLaMA state dict (float32 numpy), small random weights, ones for the norms. (The
    defaults of :func:`llama_config` keep head_dim 64: vLLM's CPU attention refuses 16.)"""
    rng = np.random.default_rng(seed)
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    d = config["head_dim"]
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d

    def w(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    out = {"model.embed_tokens.weight": w(v, h), "model.norm.weight": np.ones(h, np.float32),
           "lm_head.weight": w(v, h)}
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        out.update({p + "self_attn.q_proj.weight": w(q, h), p + "self_attn.k_proj.weight": w(kv, h),
                    p + "self_attn.v_proj.weight": w(kv, h), p + "self_attn.o_proj.weight": w(h, q),
                    p + "mlp.gate_proj.weight": w(i, h), p + "mlp.up_proj.weight": w(i, h),
                    p + "mlp.down_proj.weight": w(h, i),
                    p + "input_layernorm.weight": np.ones(h, np.float32),
                    p + "post_attention_layernorm.weight": np.ones(h, np.float32)})
    return out


def save_tensors(folder: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """model.safetensors; float arrays cast to ``dtype`` (torch for bf16), ints as they are."""
    import torch
    from safetensors.torch import save_file

    torch_dtype = getattr(torch, dtype)
    out = {}
    for k, a in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(a))
        out[k] = t.to(torch_dtype) if t.is_floating_point() and a.dtype != np.float16 else t
    save_file(out, str(folder / "model.safetensors"), metadata={"format": "pt"})


def build_llama(folder: str | Path, *, dtype: str = "float32", chat_template: bool = False,
                extra_tokens: tuple[str, ...] = (), vocab_size: int | None = None, seed: int = 0,
                generation_config: dict | None = None, **config_overrides) -> Path:
    """A 2-layer LLaMA folder with random weights stored in ``dtype``."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    n_tokens = _copy_tokenizer(folder, chat_template=chat_template, extra_tokens=extra_tokens)
    vocab = vocab_size or -(-n_tokens // 64) * 64
    config = llama_config(vocab, dtype=dtype, **config_overrides)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(
        generation_config or {"bos_token_id": 1, "eos_token_id": 2}, indent=2))
    save_tensors(folder, random_llama_tensors(config, seed), dtype)
    return folder


# --- the families ---------------------------------------------------------------------------

def build_oneke_like(folder: str | Path) -> Path:
    """OneKE as published: a LLaMA-2 with Chinese-Alpaca-2's 55296-token vocabulary, no chat
    template; neutral folder name. (bf16 stored, like zjunlp/OneKE.)"""
    return build_llama(folder, dtype="bfloat16", vocab_size=55296, max_positions=4096)


def build_ziya_like(folder: str | Path) -> Path:
    """Ziya-LLaMA: extended vocabulary with ``<human>`` and ``<bot>`` tokens, fp16 stored."""
    return build_llama(folder, dtype="float16", extra_tokens=("<human>", "<bot>"))


def build_zhixi_like(folder: str | Path, work: str | Path) -> Path:
    """ZhiXi: a base LLaMA folder + a published diff, recovered with ``weights recover``
    (float32 output, ``ie_service.json`` written by the command)."""
    from ie_service.models.weights import diff

    work = Path(work)
    base = build_llama(work / "llama-base", dtype="float16", seed=1)
    tuned = build_llama(work / "tuned", dtype="float32", seed=2)
    diff.make_diff(base, tuned, work / "diff")
    shutil.rmtree(tuned)
    return diff.recover(base, work / "diff", folder)


# --- 4-bit packing --------------------------------------------------------------------------

def quantize_sym4(w_in_out: np.ndarray, group: int, g_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit: (q [in, out] in 0..15, scales [groups, out]) with zero 8."""
    k, n = w_in_out.shape
    groups = k // group
    scales = np.zeros((groups, n), np.float32)
    for gi in range(groups):
        rows = w_in_out[g_idx == gi]
        scales[gi] = np.maximum(np.abs(rows).max(axis=0), 1e-8) / 7.0
    scales = scales.astype(np.float16).astype(np.float32)
    q = np.clip(np.round(w_in_out / scales[g_idx]) + 8, 0, 15).astype(np.uint32)
    return q, scales


def pack_gptq(weight: np.ndarray, group: int, *, desc_act: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """A torch-layout weight [out, in] → AutoGPTQ tensors (sym 4-bit)."""
    w = weight.T.astype(np.float32)  # [in, out]
    k, n = w.shape
    if desc_act:  # act-order: channels quantized in a permuted order, groups follow it
        perm = np.random.default_rng(seed).permutation(k)
        g_idx = np.empty(k, np.int32)
        g_idx[perm] = np.arange(k) // group
    else:
        g_idx = (np.arange(k) // group).astype(np.int32)
    q, scales = quantize_sym4(w, group, g_idx)
    qweight = np.zeros((k // 8, n), np.uint32)
    for i in range(8):
        qweight |= q[i::8] << (4 * i)
    zeros = np.full((k // group, n), 8 - 1, np.uint32)  # stored minus one
    qzeros = np.zeros((k // group, n // 8), np.uint32)
    for i in range(8):
        qzeros |= zeros[:, i::8] << (4 * i)
    return {"qweight": qweight.view(np.int32), "qzeros": qzeros.view(np.int32),
            "scales": scales.astype(np.float16), "g_idx": g_idx}


def unpack_gptq(t: dict[str, np.ndarray]) -> np.ndarray:
    """AutoGPTQ tensors → the float weight [out, in] they encode."""
    qweight, qzeros = t["qweight"].view(np.uint32), t["qzeros"].view(np.uint32)
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    q = np.zeros((k, n), np.int64)
    for i in range(8):
        q[i::8] = (qweight >> (4 * i)) & 0xF
    z = np.zeros((qzeros.shape[0], n), np.int64)
    for i in range(8):
        z[:, i::8] = (qzeros >> (4 * i)) & 0xF
    g = t["g_idx"].astype(np.int64)
    return (t["scales"].astype(np.float32)[g] * (q - (z[g] + 1))).T


def pack_awq(weight: np.ndarray, group: int) -> dict[str, np.ndarray]:
    """A torch-layout weight [out, in] → AutoAWQ GEMM tensors (asymmetric 4-bit)."""
    w = weight.T.astype(np.float32)  # [in, out]
    k, n = w.shape
    wg = w.reshape(k // group, group, n)
    lo, hi = wg.min(axis=1), wg.max(axis=1)
    scales = (np.maximum(hi - lo, 1e-8) / 15.0).astype(np.float16).astype(np.float32)
    zeros = np.clip(np.round(-lo / scales), 0, 15).astype(np.uint32)
    rows = np.arange(k) // group
    q = np.clip(np.round(w / scales[rows]) + zeros[rows], 0, 15).astype(np.uint32)

    def pack(a: np.ndarray) -> np.ndarray:
        out = np.zeros((a.shape[0], a.shape[1] // 8), np.uint32)
        for i, col in enumerate(AWQ_ORDER):
            out |= a[:, col::8] << (4 * i)
        return out.view(np.int32)

    return {"qweight": pack(q), "qzeros": pack(zeros), "scales": scales.astype(np.float16)}


def unpack_awq(t: dict[str, np.ndarray], group: int) -> np.ndarray:
    def unpack(a: np.ndarray) -> np.ndarray:
        a = a.view(np.uint32)
        out = np.zeros((a.shape[0], a.shape[1] * 8), np.int64)
        for i, col in enumerate(AWQ_ORDER):
            out[:, col::8] = (a >> (4 * i)) & 0xF
        return out

    q, z = unpack(t["qweight"]), unpack(t["qzeros"])
    rows = np.arange(q.shape[0]) // group
    return (t["scales"].astype(np.float32)[rows] * (q - z[rows])).T


def _quantized_folder(folder: Path, method: str, group: int, desc_act: bool, seed: int) -> dict:
    """Shared by the GPTQ / AWQ builders: config, tokenizer, fp16 side tensors."""
    folder.mkdir(parents=True)
    n_tokens = _copy_tokenizer(folder, chat_template=False)
    config = llama_config(-(-n_tokens // 64) * 64, dtype="float16")  # head_dim 64: vLLM's CPU attention
    tensors = random_llama_tensors(config, seed)
    out: dict[str, np.ndarray] = {}
    for name, a in tensors.items():
        module = name.rsplit(".", 2)[-2] if name.endswith(".weight") else ""
        if module in QUANTIZED:
            prefix = name[: -len("weight")]
            packed = pack_gptq(a, group, desc_act=desc_act, seed=seed) if method == "gptq" else pack_awq(a, group)
            out.update({prefix + k: v for k, v in packed.items()})
        else:
            out[name] = a.astype(np.float16)
    save_tensors(folder, out, "float16")
    return config


def build_gptq(folder: str | Path, *, group: int = 128, desc_act: bool = False, seed: int = 0,
               readme_title: str | None = "Firefly Llama2 7B Chat - GPTQ") -> Path:
    """A GPTQ folder as TheBloke's Firefly cards publish it: the quantization config only in
    ``quantize_config.json`` (config.json has no ``quantization_config``), and a README."""
    folder = Path(folder)
    config = _quantized_folder(folder, "gptq", group, desc_act, seed)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    (folder / "quantize_config.json").write_text(json.dumps(
        {"bits": 4, "group_size": group, "damp_percent": 0.1, "desc_act": desc_act, "static_groups": False,
         "sym": True, "true_sequential": True, "model_name_or_path": None, "model_file_base_name": "model"},
        indent=2))
    if readme_title:
        (folder / "README.md").write_text(f"# {readme_title}\n\nPrompt template: None\n\n```\n{{prompt}}\n```\n")
    return folder


def build_awq(folder: str | Path, *, group: int = 128, seed: int = 0) -> Path:
    """An AutoAWQ GEMM folder (``quantization_config`` in config.json, zero point)."""
    folder = Path(folder)
    config = _quantized_folder(folder, "awq", group, False, seed)
    config["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group,
                                     "zero_point": True, "version": "gemm"}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    return folder
