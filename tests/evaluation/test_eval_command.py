"""`ie-service eval` end to end against the real server: report, resume."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine


def run_eval(url, tmp_path, limit):
    return subprocess.run(
        [sys.executable, "-m", "ie_service.cli", "eval", "--dataset", "wnut17", "--task", "ner",
         "--limit", str(limit), "--url", url, "--out-dir", str(tmp_path), "--max-tokens", "128"],
        capture_output=True, text=True, timeout=900)


def test_eval_reports_and_resumes(server_url, tmp_path):
    first = run_eval(server_url, tmp_path, 2)
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((tmp_path / "wnut17-ner-constrained.report.json").read_text())
    assert report["totals"]["docs"] == 2 and report["totals"]["docs_this_run"] == 2
    assert report["totals"]["errors"] == 0
    micro = report["scores"]["entities"]["micro"]
    assert micro["tp"] + micro["fn"] == 2  # the first two WNUT-17 sentences hold 2 gold entities
    assert "micro" in first.stdout and "precision" not in first.stderr
    second = run_eval(server_url, tmp_path, 3)  # resumes: only the third sentence is new
    assert second.returncode == 0, second.stderr[-2000:]
    report = json.loads((tmp_path / "wnut17-ner-constrained.report.json").read_text())
    assert report["totals"]["docs"] == 3 and report["totals"]["docs_this_run"] == 1
    lines = (tmp_path / "wnut17-ner-constrained.predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # issue 29: each prediction's confidence is kept, and the report has the threshold table
    assert all(len(r["conf"]["entities"]) == len(r["pred"]["entities"]) for r in map(json.loads, lines))
    trust = report["trust"]["entities"]
    assert list(trust["thresholds"]["table"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert trust["unscored"] == 0 and trust["scored"] >= 1
    assert "AUROC" in second.stdout and "best threshold" in second.stdout


def test_eval_fewfc_triggers_only(server_url, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "ie_service.cli", "eval", "--dataset", "fewfc", "--task", "ee", "--triggers-only",
         "--limit", "2", "--url", server_url, "--out-dir", str(tmp_path), "--max-tokens", "192"],
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "fewfc-ee-constrained-triggers.report.json").read_text())
    assert set(report["scores"]) == {"triggers"}
    assert all(roles == [] for roles in report["request"]["schema"].values()) and report["request"]["schema"]
    assert report["totals"]["errors"] == 0 and report["totals"]["docs"] == 2
    bad = subprocess.run([sys.executable, "-m", "ie_service.cli", "eval", "--dataset", "wnut17", "--task", "ner",
                          "--triggers-only", "--url", server_url], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--triggers-only needs --task ee" in bad.stderr
