"""Weight tooling on tiny real LLaMA checkpoints made here (sharded safetensors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from ie_service.models.embedded import ensure_embedded_model
from ie_service.models.weights import diff, md5
from ie_service.models.weights.shards import Checkpoint, WeightsError



def tiny_llama(seed: int, vocab: int = 512, hidden: int = 64, heads: int = 4) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=heads, num_key_value_heads=heads // 2, max_position_embeddings=256,
                      tie_word_embeddings=False, torch_dtype="float32")
    return LlamaForCausalLM(cfg).to(torch.float32)


def save(model: LlamaForCausalLM, folder: Path, shard: str = "150KB") -> Path:
    model.save_pretrained(folder, safe_serialization=True, max_shard_size=shard)
    return folder


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    with Checkpoint(folder) as c:
        return {k: c.get(k).clone() for k in c.where}


@pytest.fixture()
def base_and_tuned(tmp_path):
    base = tiny_llama(0)
    tuned = tiny_llama(0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return save(base, tmp_path / "base"), save(tuned, tmp_path / "tuned")


def test_recover_of_make_diff_is_bit_exact_fp32(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    assert len(list(tuned.glob("*.safetensors"))) > 1  # sharded on purpose
    diff.make_diff(base, tuned, tmp_path / "diff")
    diff.recover(base, tmp_path / "diff", tmp_path / "rec")
    want, got = tensors(tuned), tensors(tmp_path / "rec")
    assert want.keys() == got.keys()
    for k in want:
        assert got[k].dtype == torch.float32
        assert torch.equal(got[k], want[k]), k
    assert (tmp_path / "rec" / "model.safetensors.index.json").is_file()
    assert json.loads((tmp_path / "rec" / "config.json").read_text())["torch_dtype"] == "float32"


def test_recover_fp16_within_tolerance(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    diff.make_diff(base, tuned, tmp_path / "diff")
    diff.recover(base, tmp_path / "diff", tmp_path / "rec16", fp16=True)
    want, got = tensors(tuned), tensors(tmp_path / "rec16")
    for k in want:
        assert got[k].dtype == torch.float16
        torch.testing.assert_close(got[k].float(), want[k], rtol=1e-3, atol=1e-4)


def test_apply_delta_with_vocab_growth(tmp_path):
    base = save(tiny_llama(0, vocab=512), tmp_path / "base")
    delta_model = tiny_llama(2, vocab=520)  # Ziya-style extended vocabulary
    delta = save(delta_model, tmp_path / "delta")
    diff.apply_delta(base, delta, tmp_path / "out")
    b, d, o = tensors(base), tensors(delta), tensors(tmp_path / "out")
    emb = "model.embed_tokens.weight"
    assert o[emb].shape == (520, 64)
    assert torch.equal(o[emb][:512], d[emb][:512] + b[emb])
    assert torch.equal(o[emb][512:], d[emb][512:])
    # recover refuses what apply-delta accepts
    with pytest.raises(WeightsError, match="shape mismatch.*embed_tokens"):
        diff.recover(base, delta, tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_failure_midway_leaves_no_output(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    # corrupt one tensor of the last shard of the "diff" so the error comes late
    last = sorted(tuned.glob("*.safetensors"))[-1]
    data = load_file(str(last))
    key = sorted(data)[-1]
    data[key] = torch.zeros(3, 3)
    from safetensors.torch import save_file
    save_file(data, str(last), metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=f"shape mismatch for '{key}'"):
        diff.recover(base, tuned, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_clear_errors(base_and_tuned, tmp_path):
    base, tuned = base_and_tuned
    with pytest.raises(WeightsError, match="not a folder"):
        diff.recover(tmp_path / "missing", tuned, tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no weight files"):
        diff.recover(base, tmp_path / "empty", tmp_path / "o")
    (tmp_path / "exists").mkdir()
    with pytest.raises(WeightsError, match="exists"):
        diff.recover(base, tuned, tmp_path / "exists")
    from safetensors.torch import save_file
    (tmp_path / "ints").mkdir()
    save_file({"model.norm.weight": torch.ones(64, dtype=torch.int32)}, str(tmp_path / "ints" / "model.safetensors"))
    with pytest.raises(WeightsError, match="dtype"):
        diff.recover(base, tmp_path / "ints", tmp_path / "o")


def test_reads_pytorch_bin_shards(tmp_path):
    model = tiny_llama(0)
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    got = tensors(tmp_path / "bin")
    assert torch.equal(got["model.norm.weight"], model.state_dict()["model.norm.weight"])


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ie_service.cli", *args], capture_output=True, text=True)


def test_md5_manifest_write_check_and_tamper(base_and_tuned, tmp_path):
    base, _ = base_and_tuned
    manifest = tmp_path / "sums.txt"
    assert cli("weights", "md5", str(base), "--write", str(manifest)).returncode == 0
    assert md5.read_manifest(manifest) == md5.folder_md5(base)
    ok = cli("weights", "md5", str(base), "--expect", str(manifest))
    assert ok.returncode == 0 and "OK" in ok.stdout
    (base / "config.json").write_text("{}")
    bad = cli("weights", "md5", str(base), "--expect", str(manifest))
    assert bad.returncode == 1 and "checksum mismatch: config.json" in bad.stderr


def test_cli_reports_errors_without_traceback(tmp_path):
    r = cli("weights", "recover", "--base", str(tmp_path / "x"), "--diff", str(tmp_path / "y"),
            "--out", str(tmp_path / "z"))
    assert r.returncode == 2 and r.stderr.startswith("error: not a folder") and "Traceback" not in r.stderr


@pytest.fixture()
def lora_setup(tmp_path):
    from peft import LoraConfig, get_peft_model

    embedded = ensure_embedded_model()
    tok = AutoTokenizer.from_pretrained(embedded)
    # head_dim 64: vLLM's CPU attention kernels do not take the tiny 16
    base_model = tiny_llama(3, vocab=len(tok), hidden=128, heads=2)
    base = save(base_model, tmp_path / "base", shard="5GB")
    tok.save_pretrained(base)
    peft_model = get_peft_model(tiny_llama(3, vocab=len(tok), hidden=128, heads=2), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "lora")
    return base, tmp_path / "lora", tok


def test_merge_lora_logits_equal_unmerged_peft(lora_setup, tmp_path):
    from peft import PeftModel

    base, lora, tok = lora_setup
    r = cli("weights", "merge-lora", "--base", str(base), "--lora", str(lora), "--out", str(tmp_path / "merged"))
    assert r.returncode == 0, r.stderr
    merged = LlamaForCausalLM.from_pretrained(tmp_path / "merged").eval()
    unmerged = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), lora).eval()
    plain = LlamaForCausalLM.from_pretrained(base).eval()
    ids = tok("Barack Obama met Angela Merkel.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        lm, lu, lp = merged(ids).logits, unmerged(ids).logits, plain(ids).logits
    torch.testing.assert_close(lm, lu, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(lm, lp, atol=1e-3)  # the adapter really changed the model
    assert (tmp_path / "merged" / "tokenizer.json").is_file()
    assert not any(k.startswith("base_model") or "lora" in k for k in tensors(tmp_path / "merged"))


def test_merge_lora_refuses_non_adapter(tmp_path, base_and_tuned):
    base, tuned = base_and_tuned
    r = cli("weights", "merge-lora", "--base", str(base), "--lora", str(tuned), "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "adapter_config.json" in r.stderr


@pytest.mark.engine(lane="side")  # its own small server, one at a time (tests/lanes.py)
def test_merged_folder_serves_through_real_engine(lora_setup, tmp_path):
    import httpx

    from ie_service.local_server import local_server

    base, lora, tok = lora_setup
    from ie_service.models.weights.lora import merge_lora
    merged = merge_lora(base, lora, tmp_path / "merged")
    prompt = "Barack Obama met"
    hf = LlamaForCausalLM.from_pretrained(merged).eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = hf.generate(ids, max_new_tokens=6, do_sample=False)
    expected = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    args = ["--model", str(merged), "--prompt-format", "raw", "--dtype", "float32", "--max-model-len", "256"]
    with local_server(args, log_path=tmp_path / "serve.log") as url:
        r = httpx.post(f"{url}/generate", json={"instruction": prompt,
                                                "parameters": {"temperature": 0, "max_tokens": 6}}, timeout=300)
    assert r.status_code == 200, r.text
    assert r.json()["num_output_tokens_cf"] == 6
    assert r.json()["generated_text"] == expected
