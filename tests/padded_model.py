"""The embedded model with zero attention heads added, so tensor parallel 2 can shard it
(it has 9 heads and 3 key/value heads; padded: 12 and 4). A zero query head attends
uniformly to a zero value head and its zero output columns add nothing, so the padded
model computes what the original does: the same greedy text, a real checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def pad_heads(src: Path, dst: Path, heads: int = 12, kv_heads: int = 4) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    config = json.loads((src / "config.json").read_text())
    h, kv, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    assert heads // kv_heads == h // kv, "keep the query heads per key/value head (GQA groups)"
    dst.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(src / "model.safetensors"))
    out = {}
    for name, t in tensors.items():
        if name.endswith("self_attn.q_proj.weight"):
            t = torch.cat([t, t.new_zeros((heads - h) * d, t.shape[1])])
        elif name.endswith(("self_attn.k_proj.weight", "self_attn.v_proj.weight")):
            t = torch.cat([t, t.new_zeros((kv_heads - kv) * d, t.shape[1])])
        elif name.endswith("self_attn.o_proj.weight"):
            t = torch.cat([t, t.new_zeros(t.shape[0], (heads - h) * d)], dim=1)
        out[name] = t.contiguous()
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config.update(num_attention_heads=heads, num_key_value_heads=kv_heads)
    (dst / "config.json").write_text(json.dumps(config, indent=1))
    for f in src.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, dst / f.name)
    return dst
