"""``ie-service weights quantize``: argument and calibration checks (the quantizing itself
needs the optional GPTQModel extra)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from ie_service.models.weights.shards import WeightsError
from ie_service.training.calibration import calibration_prompts


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ie_service.cli", "weights", "quantize", *args],
                          capture_output=True, text=True)


def test_calibration_prompts_from_rendered_examples(tmp_path):
    rows = [{"prompt": f"### Instruction:\nfind persons {i}\n### Response:\n", "answer": "{}"} for i in range(50)]
    path = tmp_path / "examples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = calibration_prompts(tmp_path, path, samples=20)
    assert len(prompts) == 20 and len(set(prompts)) == 20 and all("find persons" in p for p in prompts)
    path.write_text('{"text": "no prompt"}\n')
    with pytest.raises(WeightsError, match=":1: no 'prompt'"):
        calibration_prompts(tmp_path, path)


def test_refuses_quantized_or_missing_folder(tmp_path):
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq"}}))
    r = cli(str(tmp_path / "q"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "already quantized" in r.stderr and "Traceback" not in r.stderr
    r = cli(str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no config.json" in r.stderr


def test_refuses_a_group_size_vllm_could_not_load(tmp_path):
    """SmolLM2's hidden size 576 is no multiple of 128: refused before any work, naming 64."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({
        "hidden_size": 576, "num_attention_heads": 9, "intermediate_size": 1536}))
    r = cli(str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--group-size", "128")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "does not divide hidden_size" in r.stderr and "use --group-size 64" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is not None, reason="gptqmodel is installed")
def test_missing_library_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    r = cli(str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--method", "awq", "--group-size", "64")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "ie-service[quantize]" in r.stderr and not (tmp_path / "o").exists()


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="the 'quantize' extra is not installed")
def test_gptqmodel_folder_round_trips_through_dequantize(tmp_path):
    """GPTQModel's own 4-bit output, read back by ``weights dequantize``: close to the
    original weights (4-bit error), the sentencepiece tokenizer kept."""
    import torch
    from safetensors.torch import load_file

    from ie_service.models.weights.dequantize import dequantize
    from sp_folder import sp_llama_folder

    src = sp_llama_folder(tmp_path / "src")
    note = {"prompt_format": "ziya", "source": "weights apply-delta (Ziya)"}
    (src / "ie_service.json").write_text(json.dumps(note))
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps({"prompt": f"### Instruction:\nList persons {i}: Alice met Bob.\n"
                                                   f"### Response:\n"}) + "\n" for i in range(32)))
    r = cli(str(src), "--out", str(tmp_path / "q"), "--group-size", "32", "--calibration", str(calib))
    assert r.returncode == 0, r.stderr[-2000:]
    config = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert config["desc_act"] is False and config["bits"] == 4
    assert (tmp_path / "q" / "tokenizer.model").is_file() and not (tmp_path / "q" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "q" / "ie_service.json").read_text()) == note  # the prompt format stays
    a = load_file(str(src / "model.safetensors"))
    b = load_file(str(dequantize(tmp_path / "q", tmp_path / "deq") / "model.safetensors"))
    for k in (k for k in a if "proj" in k):
        cos = torch.nn.functional.cosine_similarity(a[k].float().flatten(), b[k].float().flatten(), 0)
        assert cos > 0.98, k
