"""The tools' resume safety against the real engine (issue 20): ``eval`` whose service fails
some documents stores no error as a prediction and a rerun completes them with the F1 of a
clean run; ``kg build`` resumed after a cut last line writes a file ``kg export`` accepts."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from tiny_http import tiny_server

pytestmark = pytest.mark.engine

CLI = [sys.executable, "-m", "ie_service.cli"]
GOLD = [
    {"id": "g1", "text": "Microsoft was founded by Bill Gates.",
     "entities": [{"text": "Microsoft", "type": "organization"}, {"text": "Bill Gates", "type": "person"}]},
    {"id": "g2", "text": "Steve Jobs lived in California.",
     "entities": [{"text": "Steve Jobs", "type": "person"}, {"text": "California", "type": "location"}]},
]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def eval_cmd(url, dataset, predictions, report):
    return run("eval", "--dataset", str(dataset), "--task", "ner", "--url", url, "--max-tokens", "96",
               "--predictions", str(predictions), "--report", str(report))


def failing_proxy(real_url: str, fail_text: str):
    """Forwards to the real service, but answers 503 for the document with ``fail_text``."""
    def answer(method, path, body):
        if method == "POST" and body and body.get("text") == fail_text:
            return 503, {"error": "engine unavailable"}
        r = httpx.request(method, real_url + path, json=body, timeout=300)
        return r.status_code, r.json()
    return answer


def test_eval_with_failed_documents_saves_no_error_and_the_rerun_matches_a_clean_run(server_url, tmp_path):
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("".join(json.dumps(g) + "\n" for g in GOLD))
    predictions, report = tmp_path / "p.jsonl", tmp_path / "r.json"
    with tiny_server(failing_proxy(server_url, GOLD[1]["text"])) as proxy:
        first = eval_cmd(proxy.url, dataset, predictions, report)
    assert first.returncode == 1, first.stderr[-2000:]
    assert "1 of 2 documents have no prediction (1x HTTP 503)" in first.stderr
    saved = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [r["id"] for r in saved] == ["g1"] and all("error" not in r for r in saved)

    rerun = eval_cmd(server_url, dataset, predictions, report)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = json.loads(report.read_text())
    assert (resumed["totals"]["docs"], resumed["totals"]["docs_this_run"], resumed["totals"]["errors"]) == (2, 1, 0)

    clean = eval_cmd(server_url, dataset, tmp_path / "clean.jsonl", tmp_path / "clean.json")
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert resumed["scores"] == json.loads((tmp_path / "clean.json").read_text())["scores"]


DOCS = ["Microsoft was founded by Bill Gates in Albuquerque.", "Apple was founded by Steve Jobs in Cupertino."]


def test_kg_build_resumed_after_a_cut_last_line_exports(server_url, tmp_path):
    inp = tmp_path / "docs.JSONL"  # read as JSON lines whatever the case of the suffix
    inp.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(DOCS)))
    out = tmp_path / "triples.jsonl"
    build = ["kg", "build", "--input", str(inp), "--out", str(out), "--relations", "founded by,located in",
             "--url", server_url, "--concurrency", "1", "--max-tokens", "160"]
    first = run(*build)
    assert first.returncode == 0, first.stderr[-2000:]
    data = out.read_bytes()
    assert data.count(b"\n") == 2
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    out.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # the last record cut in half

    resumed = run(*build)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    counts = json.loads(resumed.stdout.splitlines()[-1])
    assert (counts["skipped"], counts["docs"], counts["cut_lines"]) == (1, 1, 1)
    ids = [json.loads(line)["doc_id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == ["doc0", "doc1"]
    exported = run("kg", "export", "--triples", str(out), "--format", "turtle", "--out", str(tmp_path / "kg.ttl"))
    assert exported.returncode == 0, exported.stderr
    assert "2 documents" in exported.stdout
