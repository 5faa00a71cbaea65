"""Every command, every bad input: one ``error:`` line, exit 2 (1 for runtime failures such
as an unreachable --url), no traceback, and refused before any engine starts (issue 20).

Each case is a real ``python -m ie_service.cli`` subprocess. They run in a thread pool once
per module (a fixture) and each parametrized test asserts its own case, so the matrix costs
a few seconds of wall time, not one interpreter start after another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused
DOC = json.dumps({"id": "a", "text": "Apple was founded by Steve Jobs."})
TRIPLE = json.dumps({"doc_id": "d1", "triples": [
    {"head": {"text": "A"}, "relation": "r", "tail": {"text": "B"}}]})
GOLD = json.dumps({"id": "g1", "text": "Apple", "entities": [{"text": "Apple", "type": "org"}]})


def files(root: Path) -> dict[str, Path]:
    """Good and bad inputs, by name."""
    f = {
        "docs": ("docs.jsonl", DOC + "\n"),
        "binary": ("binary.jsonl", bytes(range(256)) * 8),
        "binary_txt": ("binary.bin", b"\xff\xfe\x00\x01" * 64),
        "truncated_docs": ("cut.jsonl", DOC + "\n" + DOC[:20]),
        "text_not_jsonl": ("notes.json", "just words, not JSON lines\n"),
        "triples": ("triples.jsonl", TRIPLE + "\n"),
        "triples_cut_only": ("cut-triples.jsonl", TRIPLE[:25]),
        "triples_garbage_middle": ("bad-triples.jsonl", TRIPLE + "\n" + TRIPLE[:25] + TRIPLE + "\n"),
        "gold": ("gold.jsonl", GOLD + "\n"),
        "gold_corrupt": ("gold-corrupt.jsonl", GOLD + "\n{not json\n" + GOLD + "\n"),
        "gold_no_text": ("gold-no-text.jsonl", json.dumps({"id": "x", "entities": []}) + "\n"),
        "gold_relation_lists": ("gold-rel.jsonl", json.dumps({"id": "x", "text": "t",
                                                              "relations": [["A", "r", "B"]]}) + "\n"),
        "gold_empty": ("gold-empty.jsonl", "\n\n"),
        "predictions_bad_middle": ("pred-bad.jsonl", '{"id": "g1", "pred": {}}\n{"id": "g1", "pr\n'
                                                     '{"id": "g2", "pred": {}}\n'),
        "predictions_cut_last": ("pred-cut.jsonl", '{"id": "g0", "pred": {"entities": []}}\n{"id": "g1", "pr'),
        "manifest_binary": ("md5sums.bin", b"\xff\xfe\x00" * 10),
        "regular_file": ("plain.txt", "hello\n"),
    }
    out = {}
    for name, (fname, content) in f.items():
        path = root / fname
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        out[name] = path
    (root / "folder").mkdir()
    (root / "folder" / "x.txt").write_text("x")
    (root / "empty_folder").mkdir()
    out["folder"], out["empty_folder"] = root / "folder", root / "empty_folder"
    out["missing"] = root / "no" / "such" / "file.jsonl"
    return out


def cases(p: dict[str, Path], root: Path) -> dict[str, tuple[list[str], int]]:
    """case id -> (argv after ``ie-service``, expected exit code)."""
    build = ["kg", "build", "--relations", "founded by", "--url", UNREACHABLE]
    build_here = ["kg", "build", "--relations", "founded by", "--input", str(p["docs"]),
                  "--out", str(root / "o-here.jsonl")]  # no --url: would start an engine
    ev = ["eval", "--task", "ner", "--url", UNREACHABLE]
    ev_here = ["eval", "--task", "ner", "--dataset", str(p["gold"]), "--out-dir", str(root / "ev-here")]
    export = ["kg", "export", "--triples", str(p["triples"])]
    c: dict[str, tuple[list[str], int]] = {
        # kg build
        "build-input-missing": (build + ["--input", str(p["missing"]), "--out", str(root / "o1.jsonl")], 2),
        "build-input-empty-folder": (build + ["--input", str(p["empty_folder"]), "--out", str(root / "o2.jsonl")], 2),
        "build-input-binary": (build + ["--input", str(p["binary"]), "--out", str(root / "o3.jsonl")], 2),
        "build-input-truncated": (build + ["--input", str(p["truncated_docs"]), "--out", str(root / "o4.jsonl")], 2),
        "build-input-json-not-lines": (build + ["--input", str(p["text_not_jsonl"]), "--out", str(root / "o5.jsonl")], 2),
        "build-out-folder": (build + ["--input", str(p["docs"]), "--out", str(p["folder"])], 2),
        "build-out-binary": (build + ["--input", str(p["docs"]), "--out", str(p["binary"])], 2),
        "build-limit-negative": (build + ["--input", str(p["docs"]), "--out", str(root / "o6.jsonl"), "--limit", "-1"], 2),
        "build-limit-zero": (build + ["--input", str(p["docs"]), "--out", str(root / "o7.jsonl"), "--limit", "0"], 2),
        "build-concurrency-zero": (build + ["--input", str(p["docs"]), "--out", str(root / "o8.jsonl"),
                                            "--concurrency", "0"], 2),
        "build-concurrency-negative": (build + ["--input", str(p["docs"]), "--out", str(root / "o9.jsonl"),
                                                "--concurrency", "-1"], 2),
        "build-url-unreachable": (build + ["--input", str(p["docs"]), "--out", str(root / "o10.jsonl")], 1),
        "build-url-not-a-url": (["kg", "build", "--relations", "r", "--url", "localhost:8090", "--input",
                                 str(p["docs"]), "--out", str(root / "o11.jsonl")], 2),
        "build-model-missing": (build_here + ["--model", "/nonexistent/model"], 2),
        "build-model-file": (build_here + ["--model", str(p["regular_file"])], 2),
        "build-dtype-banana": (build_here + ["--dtype", "banana"], 2),
        "build-prompt-format-nope": (build_here + ["--prompt-format", "nope"], 2),
        "build-api-key-empty": (build + ["--input", str(p["docs"]), "--out", str(root / "o12.jsonl"), "--api-key", ""], 2),
        # kg export
        "export-triples-missing": (["kg", "export", "--triples", str(p["missing"]), "--format", "nt",
                                    "--out", str(root / "x.nt")], 2),
        "export-triples-folder": (["kg", "export", "--triples", str(p["folder"]), "--format", "nt",
                                   "--out", str(root / "x.nt")], 2),
        "export-triples-binary": (["kg", "export", "--triples", str(p["binary"]), "--format", "nt",
                                   "--out", str(root / "x.nt")], 2),
        "export-triples-cut-only": (["kg", "export", "--triples", str(p["triples_cut_only"]), "--format", "nt",
                                     "--out", str(root / "x.nt")], 2),
        "export-triples-garbage-middle": (["kg", "export", "--triples", str(p["triples_garbage_middle"]),
                                           "--format", "nt", "--out", str(root / "x.nt")], 2),
        "export-out-missing-folder": (export + ["--format", "nt", "--out", str(root / "nope" / "x.nt")], 2),
        "export-out-folder": (export + ["--format", "turtle", "--out", str(p["folder"])], 2),
        "export-neo4j-onto-file": (export + ["--format", "neo4j-csv", "--out", str(p["regular_file"])], 2),
        "export-format-wrong": (export + ["--format", "graphml", "--out", str(root / "x.g")], 2),
        "export-max-nodes-zero": (export + ["--format", "html", "--out", str(root / "x.html"), "--max-nodes", "0"], 2),
        # kg load / query
        "load-triples-missing": (["kg", "load", "--triples", str(p["missing"]), "--store",
                                  f"oxigraph:{root / 'ox'}"], 2),
        "load-triples-binary": (["kg", "load", "--triples", str(p["binary"]), "--store",
                                 f"ladybug:{root / 'lb'}"], 2),
        "load-store-spec-bad": (["kg", "load", "--triples", str(p["triples"]), "--store", "neo4j:/x"], 2),
        "load-oxigraph-onto-file": (["kg", "load", "--triples", str(p["triples"]), "--store",
                                     f"oxigraph:{p['regular_file']}"], 2),
        "load-ladybug-onto-folder": (["kg", "load", "--triples", str(p["triples"]), "--store",
                                      f"ladybug:{p['folder']}"], 2),
        "query-store-missing": (["kg", "query", "--store", f"ladybug:{p['missing']}", "MATCH (n) RETURN n"], 2),
        "query-oxigraph-store-missing": (["kg", "query", "--store", f"oxigraph:{p['missing']}", "ASK {}"], 2),
        # eval
        "eval-dataset-missing": (ev + ["--dataset", str(p["missing"])], 2),
        "eval-dataset-folder": (ev + ["--dataset", str(p["folder"])], 2),
        "eval-dataset-corrupt-jsonl": (ev + ["--dataset", str(p["gold_corrupt"])], 2),
        "eval-dataset-rows-without-text": (ev + ["--dataset", str(p["gold_no_text"])], 2),
        "eval-dataset-relations-as-lists": (ev + ["--dataset", str(p["gold_relation_lists"]), "--task", "re"], 2),
        "eval-dataset-binary": (ev + ["--dataset", str(p["binary"])], 2),
        "eval-dataset-binary-no-suffix": (ev + ["--dataset", str(p["binary_txt"])], 2),
        "eval-dataset-empty": (ev + ["--dataset", str(p["gold_empty"])], 2),
        "eval-format-wrong-for-file": (ev + ["--dataset", str(p["gold"]), "--format", "crossner"], 2),
        "eval-format-bio-for-jsonl": (ev + ["--dataset", str(p["gold"]), "--format", "bio"], 2),
        "eval-format-unknown": (ev + ["--dataset", str(p["gold"]), "--format", "xml"], 2),
        "eval-url-unreachable": (ev + ["--dataset", str(p["gold"]), "--out-dir", str(root / "ev1")], 1),
        "eval-concurrency-zero": (ev + ["--dataset", str(p["gold"]), "--concurrency", "0"], 2),
        "eval-concurrency-negative": (ev + ["--dataset", str(p["gold"]), "--concurrency", "-1"], 2),
        "eval-limit-negative": (ev + ["--dataset", str(p["gold"]), "--limit", "-1"], 2),
        "eval-offset-past-end": (ev + ["--dataset", str(p["gold"]), "--offset", "5"], 2),
        "eval-out-dir-a-file": (ev + ["--dataset", str(p["gold"]), "--out-dir", str(p["regular_file"])], 2),
        "eval-predictions-bad-middle": (ev + ["--dataset", str(p["gold"]), "--predictions",
                                              str(p["predictions_bad_middle"]), "--out-dir", str(root / "ev2")], 2),
        "eval-predictions-cut-last-unreachable": (ev + ["--dataset", str(p["gold"]), "--predictions",
                                                        str(p["predictions_cut_last"]), "--out-dir", str(root / "ev3")], 1),
        "eval-schema-not-json": (ev + ["--dataset", str(p["gold"]), "--schema", str(p["binary"])], 2),
        "eval-model-missing": (ev_here + ["--model", "/nonexistent/model"], 2),
        "eval-dtype-banana": (ev_here + ["--dtype", "banana"], 2),
        # weights
        "md5-of-a-file": (["weights", "md5", str(p["regular_file"])], 2),
        "md5-missing": (["weights", "md5", str(p["missing"])], 2),
        "md5-expect-binary": (["weights", "md5", str(p["folder"]), "--expect", str(p["manifest_binary"])], 2),
        # serve: every flag checked before any engine starts
        "serve-port-70000": (["serve", "--port", "70000"], 2),
        "serve-port-0": (["serve", "--port", "0"], 2),
        "serve-api-key-empty": (["serve", "--api-key", ""], 2),
        "serve-api-key-spaces": (["serve", "--api-key", "  "], 2),
        "serve-max-request-bytes-10": (["serve", "--max-request-bytes", "10"], 2),
        "serve-max-outstanding-0": (["serve", "--max-outstanding", "0"], 2),
        "serve-request-timeout-0": (["serve", "--request-timeout", "0"], 2),
        "serve-request-timeout-nan": (["serve", "--request-timeout", "nan"], 2),
        "serve-model-missing": (["serve", "--model", "/nonexistent"], 2),
        "serve-model-file": (["serve", "--model", str(p["regular_file"])], 2),
        "serve-model-folder-without-config": (["serve", "--model", str(p["folder"])], 2),
        "serve-dtype-banana": (["serve", "--dtype", "banana"], 2),
        "serve-prompt-format-nope": (["serve", "--prompt-format", "nope"], 2),
        "serve-prompt-format-bad-file": (["serve", "--prompt-format", str(root / "nope.json")], 2),
        "serve-max-model-len-8": (["serve", "--max-model-len", "8"], 2),
    }
    return c


class _AnyPath(dict):
    """Stands in for :func:`files` to list the case ids at collection time."""

    def __missing__(self, key: str) -> Path:
        return Path("/x") / key


CASE_IDS = list(cases(_AnyPath(), Path("/x")))


def run_one(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "IE_SERVICE_DATA": "/nonexistent-data"}
    env.pop("IE_SERVICE_API_KEYS", None)
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ie_service.cli", *argv], capture_output=True, text=True,
                          timeout=120, env=env, stdin=subprocess.DEVNULL)
    return done, time.monotonic() - t


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    table = cases(files(root), root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_one, argv) for name, (argv, _) in table.items()}
        return {name: (table[name][1], *f.result()) for name, f in futures.items()}


@pytest.mark.parametrize("case", CASE_IDS)
def test_one_error_line_and_the_exit_code(case, results):
    expected, done, seconds = results[case]
    err = done.stderr
    assert "Traceback" not in err, err[-3000:]
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1, err[-3000:]
    assert done.returncode == expected, (done.returncode, err[-2000:])
    assert seconds < 60, f"{case} took {seconds:.0f}s: did an engine start?"
