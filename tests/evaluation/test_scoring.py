"""Scorer on hand-made gold/prediction pairs with known P/R/F1; loaders on the real files."""

import json

import pytest

from ie_service.evaluation import datasets
from ie_service.extraction.constraints import MAX_EVENTS
from ie_service.extraction.tasks import TASKS
from ie_service.extraction.tasks.ee import ee_schema
from ie_service.evaluation.scoring import Scorer
from ie_service.errors import BadInputFile


def test_known_prf_with_duplicates_partial_overlap_and_type_mismatch():
    s = Scorer()
    gold = [("person", "Barack Obama"), ("location", "Berlin"), ("person", "Merkel")]
    pred = [
        ("person", "Barack Obama"),   # exact: tp
        ("person", "Barack Obama"),   # duplicate: counted once
        ("person", "Obama"),          # partial overlap: fp (strict), gold "Barack Obama" already matched
        ("organization", "Berlin"),   # type mismatch: fp, and gold location/Berlin is fn
        ("person", " Merkel "),       # whitespace differences are not errors: tp
    ]
    s.add(gold, pred)
    r = s.report()
    assert (r["micro"]["tp"], r["micro"]["fp"], r["micro"]["fn"]) == (2, 2, 1)
    assert r["micro"]["precision"] == 0.5 and r["micro"]["recall"] == round(2 / 3, 4)
    assert r["micro"]["f1"] == round(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 4)
    assert r["per_type"]["person"] == {"tp": 2, "fp": 1, "fn": 0, "precision": round(2 / 3, 4),
                                       "recall": 1.0, "f1": 0.8}
    assert r["per_type"]["location"]["fn"] == 1 and r["per_type"]["organization"]["fp"] == 1


def test_documents_are_scored_separately_and_empty_is_zero():
    s = Scorer()
    s.add([("p", "A")], [])
    s.add([], [("p", "A")])  # right string, wrong document
    assert s.report()["micro"] == {"tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_triple_counts_only_when_head_relation_tail_match():
    s = Scorer()
    s.add([("founded by", "Microsoft", "Bill Gates")],
          [("founded by", "Microsoft", "Bill Gates"), ("founded by", "Bill Gates", "Microsoft")])
    assert (s.micro.tp, s.micro.fp, s.micro.fn) == (1, 1, 0)


def test_event_tuples_from_gold_and_response():
    doc = datasets.GoldDoc(id="1", text="t", events=[datasets.GoldEvent(
        type="质押", trigger="质押", arguments=[("sub-org", "A公司")])])
    response = {"events": [{"type": "质押", "trigger": {"text": "质押"},
                            "arguments": [{"role": "sub-org", "text": "A公司"}, {"role": "obj", "text": "股份"}]}]}
    assert TASKS["ee"].gold_tuples(doc) == {"triggers": [("质押", "质押")], "arguments": [("质押:sub-org", "A公司")]}
    pred = TASKS["ee"].predicted_tuples(response)
    assert pred["arguments"] == [("质押:sub-org", "A公司"), ("质押:obj", "股份")]


def test_triggers_only_drops_roles_from_schema_and_examples():
    schema = {"质押": ["sub-org", "obj-org"], "起诉": ["sub-per"]}
    examples = [{"input": "甲公司质押股份。", "output": {"质押": [{"trigger": "质押", "arguments": {"sub-org": "甲公司"}}],
                                                      "起诉": []}},
                {"input": "free text", "output": "(质押, 质押)"}]
    new_schema, new_examples = TASKS["ee"].triggers_only(schema, examples)
    assert new_schema == {"质押": [], "起诉": []}
    assert new_examples[0]["output"] == {"质押": [{"trigger": "质押", "arguments": {}}], "起诉": []}
    assert new_examples[1] == examples[1]
    assert examples[0]["output"]["质押"][0]["arguments"] == {"sub-org": "甲公司"}  # input untouched
    grammar = ee_schema(tuple((t, tuple(r)) for t, r in new_schema.items()))
    event = grammar["properties"]["质押"]
    assert event["maxItems"] == MAX_EVENTS
    assert event["items"]["properties"]["arguments"]["properties"] == {}


def test_wnut17_bio_loader():
    docs = datasets.load("wnut17")
    assert len(docs) == 1287
    assert sum(len(d.entities) for d in docs) == 1079
    assert docs[0].text.startswith("& gt ; * The soldier was killed")
    for d in docs[:200]:
        for text, _ in d.entities:
            assert text in d.text
    assert set(datasets.labels_of(docs, "ner")) == {
        "person", "location", "group", "creative-work", "corporation", "product"}


def test_bio_loader_on_own_file(tmp_path):
    path = tmp_path / "mini.bio"
    path.write_text("Barack\tB-person\nObama\tI-person\nin\tO\nNew\tB-location\nYork\tI-location\n\n"
                    "stray\tI-group\nend\tO\n")
    docs = datasets.load(str(path))
    assert [d.entities for d in docs] == [[("Barack Obama", "person"), ("New York", "location")],
                                         [("stray", "group")]]


def test_crossner_loader():
    docs = datasets.load("crossner-ai")
    assert len(docs) == 430 and sum(len(d.entities) for d in docs) == 1782
    assert docs[0].entities[0] == ("naive Bayes classifier", "algorithm")
    assert len(datasets.labels_of(docs, "ner")) == 14


def test_fewfc_loader():
    docs = datasets.load("fewfc")
    assert len(docs) == 1821 and sum(len(d.events) for d in docs) == 3320
    first = docs[0].events[0]
    assert (first.type, first.trigger) == ("减持", "减持")
    assert ("sub", "嘉强顺风") in first.arguments
    assert set(datasets.labels_of(docs, "ee")) == {"质押", "股份股权转让", "投资", "减持", "起诉"}


def test_jsonl_loader_and_missing_file(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Microsoft was founded by Bill Gates.",
                                "relations": [{"head": "Microsoft", "relation": "founded by",
                                               "tail": "Bill Gates"}]}) + "\n")
    instructie = tmp_path / "instructie.jsonl"
    instructie.write_text(json.dumps({"id": "b", "text": "t", "relation": [
        {"head": "A", "head_type": "org", "relation": "r", "tail": "B", "tail_type": "per"}]}) + "\n")
    docs = datasets.load(str(path))
    assert docs[0].relations == [("Microsoft", "founded by", "Bill Gates")]
    assert datasets.load(str(instructie))[0].relations == [("A", "r", "B")]
    with pytest.raises(BadInputFile, match="named sets"):
        datasets.load(str(tmp_path / "nope.json"))
