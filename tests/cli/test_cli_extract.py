"""``ie-service extract`` against a scripted service on loopback (--url): one text, a file
with -o (resumable), --interactive, and bad schemas / files (one error line, exit 2)."""

from __future__ import annotations

import json

import pytest

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from ie_service.cli import main
from ie_service.errors import GenerationFailed
from live_app import serve_app

TEXT = "Barack Obama met Angela Merkel in Berlin."


def reply(prompt: str, schema: dict | None) -> str:
    if "FAIL" in prompt:
        raise GenerationFailed("generation failed: scripted")  # a 500 for this text only
    return json.dumps({"person": ["Angela Merkel"] if "Merkel" in prompt else [],
                       "location": ["Berlin"] if "Berlin" in prompt else []})


@pytest.fixture(scope="module")
def url():
    with serve_app(create_app(lambda: ScriptedEngine(reply), settings=ServiceSettings(api_keys=["k"])),
                   headers={"x-api-key": "k"}) as u:
        yield u


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["extract", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_text_prints_its_records(url, capsys):
    code, out, err = run(capsys, "--task", "ner", "--schema", "person,location", "--url", url, "--api-key", "k",
                         TEXT)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [{"text": "Angela Merkel", "start": 17, "end": 30, "grounded": True, "confidence": 1.0,
                        "type": "person"},
                       {"text": "Berlin", "start": 34, "end": 40, "grounded": True, "confidence": 1.0,
                        "type": "location"}]


def test_a_file_with_progress_and_resume(url, capsys, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text(f"{TEXT}\n\nNothing here.\nFAIL this one\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ("--task", "ner", "--schema", '["person", "location"]', "-i", str(src), "-o", str(out),
            "--url", url, "--api-key", "k")
    code, _, err = run(capsys, *args)
    assert code == 1  # one text failed: reported, not written
    assert "4: " in err and "a rerun retries it" in err and "extract ner" in err  # the tqdm bar
    assert err.strip().splitlines()[-1].startswith("error: 1 text(s) not written")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["1", "3"]
    assert next(line for line in lines if line["id"] == "1")["entities"][1]["text"] == "Berlin"
    src.write_text(f"{TEXT}\n\nNothing here.\nnow fine\n", encoding="utf-8")
    code, _, err = run(capsys, *args)
    assert code == 0 and json.loads(err.strip().splitlines()[-1]) == {
        "texts": 3, "done": 1, "skipped": 2, "failed": 0, "refused": 0, "records": 0}
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == ["1", "3", "4"]


def test_jsonl_input_uses_its_ids(url, capsys, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text(json.dumps({"id": "doc-a", "text": TEXT}) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "--task", "ner", "--schema", "person", "-i", str(src), "--url", url,
                       "--api-key", "k")
    assert code == 0 and json.loads(out)["id"] == "doc-a"


def test_interactive_loop(url, capsys, monkeypatch):
    lines = iter([TEXT, "Nobody.", ""])
    monkeypatch.setattr("builtins.input", lambda prompt: next(lines))
    code, out, _ = run(capsys, "--task", "ner", "--schema", "location", "--interactive", "--url", url,
                       "--api-key", "k")
    assert code == 0 and [json.loads(line)["text"] for line in out.splitlines()] == ["Berlin"]


@pytest.mark.parametrize("argv,needle", [
    (["--task", "ner", "--schema", ",", TEXT], "--schema: schema must name at least one entity type"),
    (["--task", "ee", "--schema", "a,b", TEXT], "--schema does not fit --task ee"),
    (["--task", "re", "--schema", "{oops", TEXT], "--schema is not valid JSON"),
    (["--task", "ner", "--schema", "missing.json", TEXT], "missing.json: No such file"),
    (["--task", "ner", "--schema", "a", "-i", "nope.txt"], "nope.txt: no such file"),
    (["--task", "ner", "--schema", "a", "-i", "BAD"], "expected a .txt (one text a line), .jsonl or .ndjson file"),
])
def test_bad_schemas_and_files_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text("x")
    code, out, err = run(capsys, *argv, "--url", "http://127.0.0.1:9")  # never reached
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


def test_bad_jsonl_line_and_server_errors(url, capsys, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": 1, "text": "ok"}\n{"text": 5}\n', encoding="utf-8")
    code, _, err = run(capsys, "--task", "ner", "--schema", "a", "-i", str(src), "--url", url)
    assert code == 2 and err.strip() == f"error: {src}:2: 'text' must be a string, got int"
    code, _, err = run(capsys, "--task", "ner", "--schema", "a", "--url", url, "--api-key", "wrong", TEXT)
    assert code == 2 and err.strip() == "error: missing or invalid API key"
    code, _, err = run(capsys, "--task", "ner", "--schema", "a", "--url", url, "--api-key", "k", "FAIL")
    assert code == 1 and err.startswith("error: HTTP 500: generation failed: scripted")
    code, _, err = run(capsys, "--task", "ner", "--schema", "a", "-i", str(tmp_path / "x.txt"), "--url", url)
    assert code == 2
    with pytest.raises(SystemExit) as usage:
        main(["extract", "--task", "ner", "--schema", "a", "--url", url])  # no text, file or loop
    assert usage.value.code == 2


# ---- -o resumes like kg build and eval (issue 31, 1): one JSON lines writer


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("cut_at", ["ascii", "inside a UTF-8 character"])
def test_a_cut_last_line_is_moved_aside_and_its_text_redone(url, capsys, tmp_path, cut_at):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                           for i, t in (("a", TEXT), ("bé", "Angela Merkel in Berlin"))), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ("--task", "ner", "--schema", "person,location", "-i", str(src), "-o", str(out), "--url", url,
            "--api-key", "k", "--concurrency", "1")
    assert run(capsys, *args)[0] == 0
    data = out.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    keep = data[: len(data) - len(last) - 1]
    cut = last[:20] if cut_at == "ascii" else last[: last.index("é".encode()) + 1]
    out.write_bytes(keep + cut)
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert "internal error" not in err and "cut last line" in err
    assert (tmp_path / "out.jsonl.cut").read_bytes() == cut + b"\n"  # kept, not lost
    assert sorted(r["id"] for r in lines_of(out)) == ["a", "bé"]  # each once, and the file parses
    assert json.loads(err.strip().splitlines()[-2])["done"] == 1  # only the cut record was redone


def test_a_corrupt_middle_line_is_an_error_and_the_file_is_untouched(url, capsys, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text(f"{TEXT}\nNobody.\nBerlin.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    before = json.dumps({"id": "1", "entities": []}) + '\n{"id": "2", "enti\n' + json.dumps({"id": "3"}) + "\n"
    out.write_text(before)
    code, _, err = run(capsys, "--task", "ner", "--schema", "person", "-i", str(src), "-o", str(out),
                       "--url", url, "--api-key", "k")
    assert code == 2 and err.startswith(f"error: {out}:2: not JSON") and err.count("\n") == 1, err
    assert out.read_text() == before and not (tmp_path / "out.jsonl.cut").exists()


def test_duplicate_ids_are_refused_naming_the_id(url, capsys, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": TEXT}) + "\n" for i in ("x", "y", "x")))
    code, _, err = run(capsys, "--task", "ner", "--schema", "person", "-i", str(src), "--url", url, "--api-key", "k")
    assert code == 2 and err.strip() == "error: text id 'x' occurs twice (texts 1 and 3); resuming needs unique ids"


@pytest.mark.parametrize("name", ["docs.JSONL", "docs.ndjson", "docs.NDJSON", "docs.Jsonl"])
def test_json_lines_suffixes_as_kg_build_and_eval_take_them(url, capsys, tmp_path, name):
    src = tmp_path / name
    src.write_text(json.dumps({"id": "doc-a", "text": TEXT}) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "--task", "ner", "--schema", "person", "-i", str(src), "--url", url,
                         "--api-key", "k")
    assert code == 0 and json.loads(out)["id"] == "doc-a", err
