"""``kg export`` and ``kg build`` refuse a bad input file in one ``error:`` line naming the file
and the line, exit 2, and write nothing (issue 12, part 4: the probe's tracebacks)."""

from __future__ import annotations

import json

import pytest

from cli_runs import assert_one_line, run_cli


GOOD_LINE = json.dumps({"doc_id": "d1", "triples": [
    {"head": {"text": "A"}, "relation": "r", "tail": {"text": "B"}}]})


@pytest.mark.parametrize("content,needles", [
    (GOOD_LINE + "\nnot json\n" + GOOD_LINE + "\n", [":2:", "not JSON"]),
    (GOOD_LINE + '\n{"doc_id": "d2", "triples": "many"}\n', [":2:", "triples must be a list"]),
    ('{"doc_id": 1.5, "triples": []}\n', [":1:", "doc_id must be a string"]),
    (GOOD_LINE + '\n{"doc_id": "d3", "triples": [{"head": {"text": 5}, "relation": "r", "tail": {"text": "x"}}]}\n',
     [":2:", "head.text must be a string"]),
    (b"\xff\xfe garbage\n" + GOOD_LINE.encode() + b"\n", [":1:", "not UTF-8"]),
    ('{"doc_id": "d1", "tri', ["no triple records"]),  # only a torn line: not a success with 0 entities
    ("", ["no triple records"]),
    ("[1, 2]\n", [":1:", "expected an object"]),
])
def test_kg_export_bad_files_one_line_exit_2(tmp_path, capsys, content, needles):
    triples = tmp_path / "t.jsonl"
    (triples.write_bytes if isinstance(content, bytes) else triples.write_text)(content)
    code, err = run_cli(capsys, "kg", "export", "--triples", str(triples), "--format", "cypher",
                        "--out", str(tmp_path / "out.json"))
    assert code == 2
    assert_one_line(err, str(triples), *needles)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("name,content,needles", [
    ("d.jsonl", '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', [":2:", "not JSON"]),
    ("d.jsonl", '{"id": "a", "text": ["not", "a", "string"]}\n', [":1:", "'text' must be a string"]),
    ("d.jsonl", '{"id": {"x": 1}, "text": "t"}\n', [":1:", "'id' must be"]),
    ("d.jsonl", b'{"id": "a", "text": "caf\xe9"}\n', [":1:", "not UTF-8"]),
    ("d.jsonl", "\n\n", ["no documents"]),
    ("d.txt", b"\xc3\x28 bad", [":1:", "not UTF-8"]),
])
def test_kg_build_bad_inputs_one_line_exit_2(tmp_path, capsys, name, content, needles):
    docs = tmp_path / name
    (docs.write_bytes if isinstance(content, bytes) else docs.write_text)(content)
    code, err = run_cli(capsys, "kg", "build", "--input", str(docs), "--relations", "r",
                        "--out", str(tmp_path / "o.jsonl"), "--url", "http://127.0.0.1:9")
    assert code == 2
    assert_one_line(err, str(docs), *needles)


def test_kg_build_bad_schema_file(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "ok"}\n')
    (tmp_path / "schema.json").write_text('["founded by",\n  oops]')
    code, err = run_cli(capsys, "kg", "build", "--input", str(tmp_path / "d.jsonl"), "--schema",
                        str(tmp_path / "schema.json"), "--out", str(tmp_path / "o.jsonl"), "--url", "http://x")
    assert code == 2
    assert_one_line(err, "schema.json:2:", "not JSON")
