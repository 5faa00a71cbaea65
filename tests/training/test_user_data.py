"""Your annotations in (``train data --from``): the three formats, bad rows with their line
numbers, --strict, the dev split by hash, schemas sampled from the file's own labels."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ie_service.cli import main
from ie_service.training.user_data import (
    EMPTY, MISMATCH, NOT_IN_TEXT, NOT_JSON, OUTSIDE, UNKNOWN_TASK, read_user_file,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "usaddress" / "addresses.doccano.jsonl"


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def reasons(f) -> dict[int, str]:
    return {b.line: b.reason for b in f.bad}


def test_gold_jsonl_with_offsets_or_span_texts(tmp_path):
    path = write(tmp_path / "gold.jsonl", [
        {"text": "Acme hired Bo Li in Paris.", "entities": [{"text": "Acme", "type": "org"},
                                                         {"start": 11, "end": 16, "type": "person"}],
         "relations": [{"head": "Bo Li", "relation": "works for", "tail": {"start": 0, "end": 4}}]},
        {"text": "Nothing here.", "entities": []},  # an explicit "none": a negative example
        {"text": "Bad.", "entities": [{"start": 2, "end": 9, "type": "x"}]},
        {"text": "Acme hired Bo.", "entities": [{"text": "Bob", "start": 11, "end": 13, "type": "person"}]},
        {"text": "Acme hired Bo.", "entities": [{"text": "Zed", "type": "person"}]},
        {"text": "Acme.", "task": "summarise", "entities": []},
        {"text": "Acme.", "entities": [{"text": "Acme", "type": ""}]},
        {"text": "No annotation keys at all."},
        "{not json",
    ])
    f = read_user_file(path)
    assert f.format == "gold"
    assert reasons(f) == {3: OUTSIDE, 4: MISMATCH, 5: NOT_IN_TEXT, 6: UNKNOWN_TASK, 7: EMPTY, 8: EMPTY, 9: NOT_JSON}
    first = f.rows[0]
    assert first.tasks == ("ner", "re")
    assert first.doc.entities == [("Acme", "org"), ("Bo Li", "person")]
    assert first.doc.relations == [("Bo Li", "works for", "Acme")]
    assert f.rows[1].doc.entities == [] and f.rows[1].tasks == ("ner",)
    report = f.report()
    assert report["rows"] == 9 and report["used"] == 2 and report["bad"] == 7
    assert report["bad_by_reason"][EMPTY]["lines"] == [7, 8]


def test_doccano_both_exports(tmp_path):
    path = write(tmp_path / "d.jsonl", [
        {"text": "Aspirin 100 mg daily.", "label": [[0, 7, "Drug"], [8, 14, "Dose"]]},
        {"text": "Unlabelled row.", "label": []},
        {"text": "Short.", "label": [[0, 99, "Drug"]]},
    ])
    f = read_user_file(path)
    assert f.format == "doccano"
    assert f.rows[0].doc.entities == [("Aspirin", "Drug"), ("100 mg", "Dose")]
    assert reasons(f) == {2: EMPTY, 3: OUTSIDE}
    rel = write(tmp_path / "r.jsonl", [{
        "text": "Ann founded Zeta.",
        "entities": [{"id": 1, "start_offset": 0, "end_offset": 3, "label": "PER"},
                     {"id": 2, "start_offset": 12, "end_offset": 16, "label": "ORG"}],
        "relations": [{"id": 9, "from_id": 1, "to_id": 2, "type": "founded"}]}])
    g = read_user_file(rel)
    assert g.format == "doccano" and g.rows[0].tasks == ("ner", "re")
    assert g.rows[0].doc.relations == [("Ann", "founded", "Zeta")]


def test_label_studio_export_with_line_numbers(tmp_path):
    tasks = [
        {"id": 1, "data": {"text": "Ann founded Zeta in Oslo."}, "annotations": [{"result": [
            {"id": "a", "type": "labels", "value": {"start": 0, "end": 3, "text": "Ann", "labels": ["PER"]}},
            {"id": "b", "type": "labels", "value": {"start": 12, "end": 16, "text": "Zeta", "labels": ["ORG"]}},
            {"type": "relation", "from_id": "b", "to_id": "a", "direction": "left", "labels": ["founded by"]},
        ]}]},
        {"id": 2, "data": {"text": "Not annotated."}, "annotations": []},
        {"id": 3, "data": {"text": "Zeta"}, "annotations": [{"result": [
            {"id": "c", "type": "choices", "value": {"choices": ["positive"]}}]}]},
        {"id": 4, "data": {"text": "Zeta"}, "annotations": [{"result": [
            {"id": "d", "type": "labels", "value": {"start": 0, "end": 4, "text": "Zeta", "labels": []}}]}]},
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    f = read_user_file(path)
    assert f.format == "label-studio"
    doc = f.rows[0].doc
    assert doc.entities == [("Ann", "PER"), ("Zeta", "ORG")]
    assert doc.relations == [("Ann", "founded by", "Zeta")]  # direction: left reverses from → to
    assert f.rows[0].line == 2
    text = path.read_text().splitlines()
    by_id = {int(text[b.line].split(":")[1].strip(" ,")): b.reason for b in f.bad}  # the line after "{"
    assert by_id == {2: EMPTY, 3: UNKNOWN_TASK, 4: EMPTY}
    assert all(text[b.line - 1].strip() == "{" for b in f.bad)


def test_train_data_from_file_writes_examples_dev_split_and_report(tmp_path, capsys):
    out = tmp_path / "run" / "examples.jsonl.gz"
    bad = write(tmp_path / "bad.jsonl", [{"text": "Short.", "label": [[0, 99, "Drug"]]}])
    code = main(["train", "data", "--from", str(DATA), "--from", str(bad), "--out", str(out),
                 "--dev-share", "0.25", "--model", _base()])
    assert code == 0
    captured = capsys.readouterr()
    assert "skipped: " in captured.err and "line 1" in captured.err and OUTSIDE in captured.err
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    meta = json.loads(out.with_name("examples.meta.json").read_text())
    assert meta["from"][1]["bad"] == 1 and meta["from"][0]["used"] == 390
    labels = {"AddressNumber", "StreetName", "StreetNamePostType", "PlaceName", "StateName", "ZipCode"}
    train = [r for r in rows if r.get("split", "train") == "train"]
    dev = [r for r in rows if r.get("split") == "dev"]
    assert train and dev
    # schemas: the file's own labels only, sometimes none of the gold ones
    assert all(set(r["schema"]) <= labels for r in rows)
    gold = json.loads(out.with_name("eval").joinpath("ner-dev.jsonl").read_text().splitlines()[0])
    assert set(gold) >= {"id", "text", "entities"}
    dev_texts = {json.loads(line)["text"] for line in (out.parent / "eval" / "ner-dev.jsonl").read_text().splitlines()}
    assert 60 <= len(dev_texts) <= 140  # a quarter of 390, by hash
    assert not any(t in r["prompt"] for r in train for t in dev_texts)  # nothing held out is trained on


def test_train_data_strict_refuses_bad_rows(tmp_path, capsys):
    bad = write(tmp_path / "bad.jsonl", [{"text": "Ok here.", "label": [[0, 2, "X"]]},
                                         {"text": "Short.", "label": [[0, 99, "Drug"]]}])
    code = main(["train", "data", "--from", str(bad), "--out", str(tmp_path / "e.jsonl"), "--strict",
                 "--model", _base()])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "line 2" in err and "--strict" in err
    assert not (tmp_path / "e.jsonl").exists()


def test_train_data_needs_a_source(tmp_path, capsys):
    assert main(["train", "data", "--out", str(tmp_path / "e.jsonl")]) == 2
    assert "--from" in capsys.readouterr().err


def _base() -> str:
    from ie_service.models.embedded import ensure_base_model

    return str(ensure_base_model())


@pytest.mark.parametrize("spec,needle", [("nameonly", "NAME=PATH"), ("a=/nonexistent", "adapter_config.json"),
                                         ("bad name=/x", "adapter name")])
def test_lora_flag_is_checked_before_start(spec, needle):
    from ie_service.cli.common import UsageError, engine_config_from
    from ie_service.cli import build_parser

    args = build_parser().parse_args(["serve", "--lora", spec])
    with pytest.raises(UsageError, match=needle):
        engine_config_from(args)


def test_compare_table_base_vs_adapter():
    from ie_service.training.loop import compare_table

    def prf(tp, fp, fn):
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}

    scores = {"ner": {
        "base": {"scores": {"entities": {"micro": prf(1, 3, 9), "per_type": {"ZipCode": prf(1, 3, 9)}}}},
        "adapter": {"scores": {"entities": {"micro": prf(8, 1, 2),
                                            "per_type": {"ZipCode": prf(6, 1, 4), "StateName": prf(2, 0, 0)}}}}}}
    lines = compare_table(scores).splitlines()
    assert lines[0] == "ner entities"
    zip_row = next(line for line in lines if line.startswith("ZipCode"))
    assert zip_row.split()[1:4] == ["0.250", "0.100", "0.143"] and zip_row.split()[4:7] == ["0.857", "0.600", "0.706"]
    state = next(line for line in lines if line.startswith("StateName"))
    assert state.split()[1:4] == ["-", "-", "-"]  # the base never predicted or missed it
    assert lines[-1].startswith("micro") and lines[-1].split()[-1] == "10"


def test_train_run_data_step_resumes_only_for_the_same_input(tmp_path):
    from ie_service.training import loop

    parser = __import__("argparse").ArgumentParser()
    loop.add_arguments(parser)
    args = parser.parse_args(["--from", str(DATA), "--out", str(tmp_path), "--model", _base(), "--resume"])
    first = loop.data_step(args, tmp_path)
    assert first["from"][0]["used"] == 390 and (tmp_path / "data" / "eval" / "ner-dev.jsonl").is_file()
    stamp = (tmp_path / "data" / "examples.jsonl.gz").stat().st_mtime_ns
    assert loop.data_step(args, tmp_path) == first  # same file: not rendered again
    assert (tmp_path / "data" / "examples.jsonl.gz").stat().st_mtime_ns == stamp
