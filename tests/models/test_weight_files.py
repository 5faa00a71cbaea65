"""The weight tools (``weights recover``, ``make-diff``, ``merge-lora``) refuse a damaged checkpoint
or adapter in one ``error:`` line naming the file, exit 2, and leave no output; a signal
during a write removes the partial output folder (issue 12, part 4)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cli_runs import assert_one_line, run_cli

ROOT = Path(__file__).resolve().parents[2]


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(64, 64, generator=g), "b": torch.randn(64, generator=g)},
              str(folder / "model.safetensors"))
    # a complete tiny config: should anything load it as a model, it stays small (a bare
    # {"model_type": "llama"} means LLaMA-7B defaults, 26 GB in float32)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 128, "torch_dtype": "float32"}))
    return folder


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage,needles", [
    (lambda f: (f / "model.safetensors").write_bytes(bytes(range(256)) * 64), ["not a safetensors file"]),
    (lambda f: truncate(f / "model.safetensors"), ["truncated"]),
    (lambda f: (f / "model.safetensors").write_bytes(b"\x05"), ["too short"]),
    (lambda f: ((f / "model.safetensors").unlink(), (f / "pytorch_model.bin").write_bytes(b"random junk" * 50)),
     ["unreadable PyTorch weights file"]),
])
@pytest.mark.parametrize("op", ["recover", "make-diff"])
def test_weights_bad_checkpoints_one_line_exit_2(tmp_path, capsys, damage, needles, op):
    base = tiny_checkpoint(tmp_path / "base")
    other = tiny_checkpoint(tmp_path / "other", seed=1)
    damage(other)
    flag = "--diff" if op == "recover" else "--tuned"
    code, err = run_cli(capsys, "weights", op, "--base", str(base), flag, str(other), "--out", str(tmp_path / "o"))
    assert code == 2
    assert_one_line(err, str(other), *needles)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.partial-*"))


@pytest.mark.parametrize("damage,needles", [
    (lambda a: (a / "adapter_config.json").write_text("{not json"), ["adapter_config.json", "not a JSON"]),
    (lambda a: (a / "adapter_config.json").write_text('{"r": 4}'), ["no peft_type"]),
    (lambda a: (a / "adapter_model.safetensors").write_bytes(b"\x00" * 7), ["adapter_model.safetensors", "too short"]),
    (lambda a: truncate(a / "adapter_model.safetensors"), ["adapter_model.safetensors", "truncated"]),
    (lambda a: (a / "adapter_model.safetensors").unlink(), ["has no adapter_model"]),
])
def test_merge_lora_bad_adapters_one_line_exit_2(tmp_path, capsys, damage, needles):
    base = tiny_checkpoint(tmp_path / "base")
    lora = tiny_checkpoint(tmp_path / "lora", seed=2)
    (lora / "model.safetensors").rename(lora / "adapter_model.safetensors")
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    damage(lora)
    code, err = run_cli(capsys, "weights", "merge-lora", "--base", str(base), "--lora", str(lora),
                        "--out", str(tmp_path / "m"))
    assert code == 2
    assert_one_line(err, *needles)


def test_merge_lora_truncated_base_one_line_exit_2(tmp_path, capsys):
    base = tiny_checkpoint(tmp_path / "base")
    truncate(base / "model.safetensors")
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    tiny_checkpoint(tmp_path / "x")
    (tmp_path / "x" / "model.safetensors").rename(lora / "adapter_model.safetensors")
    code, err = run_cli(capsys, "weights", "merge-lora", "--base", str(base), "--lora", str(lora),
                        "--out", str(tmp_path / "m"))
    assert code == 2
    assert_one_line(err, str(base / "model.safetensors"), "truncated")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_removes_partial_output(tmp_path, sig):
    # the child starts with the signals as under a terminal: a run under nohup (SIGHUP) or in a
    # shell's background (SIGINT) hands them ignored, which atomic_output keeps, rightly
    script = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from ie_service.models.weights.shards import atomic_output
        with atomic_output(sys.argv[1]) as tmp:
            (tmp / "model.safetensors").write_bytes(b"x" * 1000)
            print(tmp, flush=True)
            time.sleep(60)
    """)
    out = tmp_path / "merged"
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    partial = Path(proc.stdout.readline().strip())
    assert partial.name == f".merged.partial-{proc.pid}" and partial.is_dir()
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    assert code != 0
    assert not partial.exists() and not out.exists()
    assert list(tmp_path.iterdir()) == []
