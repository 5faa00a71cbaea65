"""``ie-service weights quantize``: argument and calibration checks (the quantizing itself
needs the optional GPTQModel extra)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from ie_service.weights.quantize import calibration_prompts
from ie_service.weights.shards import WeightsError


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


@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is not None, reason="gptqmodel is installed")
def test_missing_library_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    r = cli(str(tmp_path / "m"), "--out", str(tmp_path / "o"), "--method", "awq", "--group-size", "64")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "ie-service[quantize]" in r.stderr and not (tmp_path / "o").exists()
