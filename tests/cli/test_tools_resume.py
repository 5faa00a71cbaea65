"""No silent data loss in the tools (issue 20): appends start on a fresh line, a resume skips
a cut last line (also one cut inside a UTF-8 character) and reports it, JSON lines are read
by content, ``--limit`` keeps N, and ``eval`` never stores an error as a prediction.

The service here is a tiny loopback HTTP server (tests/tiny_http.py); the same flows run
against the real engine in tests/cli/test_tools_rerun.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tiny_http import tiny_server

from ie_service import jsonl
from ie_service.kg.build import read_documents, resume_state
from ie_service.errors import BadInputFile, UserInputError

CLI = [sys.executable, "-m", "ie_service.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def record(doc_id: str, name: str = "北京大学") -> str:
    return json.dumps({"doc_id": doc_id, "triples": [{"head": {"text": name, "type": "org"}, "relation": "r",
                                                      "tail": {"text": "B", "type": None}}], "warnings": []},
                      ensure_ascii=False)


# ---- the JSONL helper


@pytest.mark.parametrize("cut_at", ["ascii", "inside a UTF-8 character"])
def test_append_moves_a_cut_last_line_aside_and_starts_fresh(tmp_path, cut_at):
    path = tmp_path / "out.jsonl"
    whole = (record("d0") + "\n").encode()
    last = record("d1").encode()
    cut = last[:20] if cut_at == "ascii" else last[: last.index("北".encode()) + 1]
    path.write_bytes(whole + cut)
    lines = jsonl.read_json_lines(path)
    assert [r["doc_id"] for _, r in lines.records] == ["d0"] and lines.cut == 1
    with jsonl.open_for_append(path) as sink:
        jsonl.append(sink, json.loads(record("d1")))
    assert path.read_bytes() == whole + (record("d1") + "\n").encode()
    assert (tmp_path / "out.jsonl.cut").read_bytes() == cut + b"\n"  # kept, not lost
    assert jsonl.read_json_lines(path).cut == 0


def test_a_whole_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(record("d0") + "\n" + record("d1"))
    assert jsonl.repair_for_append(path) == 0
    assert path.read_text() == record("d0") + "\n" + record("d1") + "\n"
    assert not (tmp_path / "out.jsonl.cut").exists()


def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text(record("d0") + "\n" + '{"doc_id": "d39", "triple' + record("d1") + "\n" + record("d2") + "\n")
    with pytest.raises(BadInputFile, match=r"out.jsonl:2: not JSON"):
        resume_state(path)


def test_json_nested_too_deeply_is_bad_json_not_a_crash(tmp_path):
    deep = b"[" * 50_000 + b"]" * 50_000
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"id": "a", "x": ' + deep + b"}\n")
    with pytest.raises(BadInputFile, match=r"deep.jsonl:1: not JSON \(nested too deeply\)"):
        jsonl.read_json_lines(path)
    assert not jsonl.looks_like_json_lines(deep + b"\n")


def test_ids_must_be_unique():
    jsonl.check_unique(["a", "b"])
    with pytest.raises(UserInputError, match=r"document id 'b' occurs twice \(documents 2 and 4\)"):
        jsonl.check_unique(["a", "b", "c", "b"])


# ---- kg build: JSON lines by content, --limit, resume after a cut line


@pytest.mark.parametrize("name", ["docs.JSONL", "docs.ndjson", "docs.NDJSON", "docs.txt", "docs"])
def test_json_lines_are_read_by_content_not_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(40)))
    docs = list(read_documents([str(path)]))
    assert [d.id for d in docs] == [f"d{i}" for i in range(40)]


def test_a_text_file_is_still_one_document(tmp_path):
    (tmp_path / "a.txt").write_text("Apple was founded by Steve Jobs.\n{not json}\n")
    assert [d.id for d in read_documents([str(tmp_path / "a.txt")])] == ["a.txt"]


def re_service(method: str, path: str, body):
    if path == "/extract/re":
        head = body["text"].split()[0]
        return 200, {"triples": [{"head": {"text": head, "type": None}, "relation": "founded by",
                                  "tail": {"text": "北京大学", "type": None}}], "warnings": [],
                     "language": "en", "template": "re-en-schema@1", "raw_output": [], "stats": {}}
    return 404, {"error": "not here"}


def build(url, inp, out, *extra):
    return run("kg", "build", "--input", str(inp), "--out", str(out), "--relations", "founded by",
               "--url", url, *extra)


def test_kg_build_limit_keeps_n_and_resume_after_a_cut_line_is_exportable(tmp_path):
    inp = tmp_path / "docs.ndjson"
    inp.write_text("".join(json.dumps({"id": f"d{i}", "text": f"Org{i} was founded."}) + "\n" for i in range(6)))
    out = tmp_path / "triples.jsonl"
    with tiny_server(re_service) as service:
        first = build(service.url, inp, out, "--limit", "3")
        assert first.returncode == 0, first.stderr[-2000:]
        assert json.loads(first.stdout.splitlines()[-1])["docs"] == 3  # --limit 3 is 3, not 2
        data = out.read_bytes()
        cut = data[: data.rindex("北".encode()) + 2]  # the last record cut inside a character
        out.write_bytes(cut)
        again = build(service.url, inp, out)
    assert again.returncode == 0, again.stderr[-2000:]
    counts = json.loads(again.stdout.splitlines()[-1])
    assert (counts["skipped"], counts["docs"], counts["cut_lines"]) == (2, 4, 1)
    assert "cut last line" in again.stderr and "Traceback" not in again.stderr
    ids = [json.loads(line)["doc_id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == [f"d{i}" for i in range(6)]  # each once
    exported = run("kg", "export", "--triples", str(out), "--format", "nt", "--out", str(tmp_path / "kg.nt"))
    assert exported.returncode == 0, exported.stderr
    assert "6 documents" in exported.stdout


# ---- eval: a failure is never a prediction


GOLD = [{"id": f"g{i}", "text": f"Org{i} is big.", "entities": [{"text": f"Org{i}", "type": "org"}]}
        for i in range(3)]


def ner_service(state: dict):
    def answer(method, path, body):
        if path != "/extract/ner":
            return 404, {"error": "not here"}
        if state["failing"]:
            return 503, {"error": "engine unavailable"}
        name = body["text"].split()[0]
        return 200, {"entities": [{"type": "org", "text": name}], "template": "ner-en@1",
                     "language": "en", "raw_output": [], "warnings": [],
                     "stats": {"prompts": 1, "unparseable": 0, "truncated": 0, "ungrounded": 0, "output_tokens": 5}}
    return answer


def eval_run(url, dataset, out_dir):
    return run("eval", "--dataset", str(dataset), "--task", "ner", "--url", url, "--out-dir", str(out_dir))


def test_eval_never_saves_an_error_and_a_rerun_completes(tmp_path):
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("".join(json.dumps(g) + "\n" for g in GOLD))
    predictions = tmp_path / "gold-ner-constrained.predictions.jsonl"
    report_path = tmp_path / "gold-ner-constrained.report.json"
    state = {"failing": True}
    with tiny_server(ner_service(state)) as service:
        dead = eval_run(service.url, dataset, tmp_path)
        assert dead.returncode == 1, dead.stderr[-2000:]
        assert "error: 3 of 3 documents have no prediction (3x HTTP 503)" in dead.stderr
        assert "Traceback" not in dead.stderr
        assert not predictions.exists() or predictions.read_text().strip() == ""
        assert json.loads(report_path.read_text())["totals"]["errors"] == 3
        state["failing"] = False
        healthy = eval_run(service.url, dataset, tmp_path)
    assert healthy.returncode == 0, healthy.stderr[-2000:]
    totals = json.loads(report_path.read_text())["totals"]
    assert (totals["docs"], totals["docs_this_run"], totals["errors"]) == (3, 3, 0)
    assert json.loads(report_path.read_text())["scores"]["entities"]["micro"]["f1"] == 1.0


def test_eval_retries_error_records_of_older_versions_and_a_cut_line(tmp_path):
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("".join(json.dumps(g) + "\n" for g in GOLD))
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "g0", "error": "503: engine unavailable", "seconds": 0.1}) + "\n"
                           + json.dumps({"id": "g1", "pred": {"entities": [["org", "Org1"]]}}) + "\n"
                           + '{"id": "g2", "pred": {"enti')
    with tiny_server(ner_service({"failing": False})) as service:
        done = run("eval", "--dataset", str(dataset), "--task", "ner", "--url", service.url,
                   "--predictions", str(predictions), "--report", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["docs_this_run"] == 2 and report["totals"]["cut_lines"] == 1
    assert report["scores"]["entities"]["micro"]["f1"] == 1.0
    assert (tmp_path / "p.jsonl.cut").exists()


def test_eval_adapter_goes_in_every_request_and_keeps_its_own_predictions(tmp_path):
    """``eval --adapter NAME`` scores an adapter the service serves; its predictions never share
    a resumable file with the base model's (a resume would score the base as the adapter)."""
    dataset = tmp_path / "gold.jsonl"
    dataset.write_text("".join(json.dumps(g) + "\n" for g in GOLD))
    seen: list[str | None] = []
    plain = ner_service({"failing": False})

    def answer(method, path, body):
        if path == "/extract/ner":
            seen.append(body.get("adapter"))
        return plain(method, path, body)

    with tiny_server(answer) as service:
        base = eval_run(service.url, dataset, tmp_path)
        adapted = run("eval", "--dataset", str(dataset), "--task", "ner", "--url", service.url,
                      "--out-dir", str(tmp_path), "--adapter", "contracts")
    assert base.returncode == 0 and adapted.returncode == 0, adapted.stderr[-2000:]
    assert seen == [None] * 3 + ["contracts"] * 3  # the base run's predictions were not reused
    assert (tmp_path / "gold-ner-constrained-contracts.predictions.jsonl").exists()
    assert (tmp_path / "gold-ner-constrained.predictions.jsonl").exists()
