"""The compact answer shape (issue 28 item 3): only the labels the text holds, in schema
order, lists non-empty, ``{}`` for nothing. A property of the model folder
(``ie_service.json`` / the adapter's manifest); checked with xgrammar's own matcher on the
gold answers of the shared sets, both as the grounded grammar and as the JSON schema vLLM
compiles (with its compact separators)."""

from __future__ import annotations

import asyncio
import json
from functools import lru_cache

import pytest
import xgrammar as xgr
from xgrammar.testing import _is_grammar_accept_string

from ie_service.models.inspection import inspect_model
from ie_service.models.sidecar import SIDECAR, adapter_answer_shape, answer_shape_of, set_answer_shape, write_sidecar
from ie_service.evaluation import datasets
from ie_service.extraction.constraints import compacted
from ie_service.extraction.extractor import Extractor, answer_shape
from ie_service.extraction.grounded_grammar import grounded_grammar
from ie_service.extraction.tasks import TASKS
from ie_service.extraction.tasks.base import NotExpressible
from ie_service.extraction.templates import TemplateRegistry
from ie_service.extraction.wire import ExtractOptions

from fakes import ScriptedEngine

TRAIN_DIR = datasets.data_dir() / "train"
DOCS = 120  # per shared set: every label group of each document
GROUNDED_DOCS = 30  # the grounded grammar compiles per text: fewer


def text(answer) -> str:
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> xgr.Grammar:
    # as vLLM compiles a json schema with disable_any_whitespace (backend_xgrammar.py)
    return xgr.Grammar.from_json_schema(schema_json, any_whitespace=False, separators=(",", ":"))


def schema_accepts(schema: dict, answer) -> bool:
    return _is_grammar_accept_string(_schema_grammar(json.dumps(schema)), text(answer))


def grounded_accepts(task, group, doc_text: str, answer, shape: str = "compact") -> bool:
    return _is_grammar_accept_string(grounded_grammar(task.answer_grammar(group, shape), doc_text), text(answer))


def _fewrel() -> list:
    from ie_service.training.sources import fewrel_splits

    if not TRAIN_DIR.is_dir():
        pytest.skip(f"no training data at {TRAIN_DIR}")
    splits = fewrel_splits(TRAIN_DIR)
    return (splits["dev"] + splits["zeroshot"])[::30]


SETS = {"wnut17": "ner", "crossner-ai": "ner", "crossner-music": "ner", "fewfc": "ee", "fewrel": "re"}


@pytest.mark.parametrize("name", list(SETS))
def test_compact_grammar_accepts_every_gold_answer_of_the_shared_sets(name):
    """Every gold answer the full shape can express, written compact, is accepted by the
    compact JSON schema (and, on a sample, by the compact grounded grammar); the full shape's
    grammar refuses the compact answer wherever a label is absent."""
    task = TASKS[SETS[name]]
    docs = _fewrel() if name == "fewrel" else datasets.load(name)[:DOCS]
    labels = task.labels(task.gold_schema(docs))
    size = task.labels_per_prompt
    groups = [labels[i:i + size] for i in range(0, len(labels), size)]
    checked = empty = 0
    for i, doc in enumerate(docs):
        for group in groups:
            try:
                full = task.gold_answer(doc, group)
            except NotExpressible:
                continue
            answer = task.gold_answer(doc, group, "compact")
            if SETS[name] != "ee":  # EE also drops empty roles inside events
                assert answer == compacted(full)
            assert list(answer) == [label.name for label in group if label.name in answer]  # schema order
            assert all(answer.values())
            if not schema_accepts(task.json_schema(group), full):
                continue  # over a bound the full shape refuses too (a '"' in a WNUT span, ...)
            assert schema_accepts(task.json_schema(group, "compact"), answer), (doc.id, answer)
            if i < GROUNDED_DOCS and grounded_accepts(task, group, doc.text, full, "full"):
                assert grounded_accepts(task, group, doc.text, answer), (doc.id, answer)
            if answer != full:
                assert not schema_accepts(task.json_schema(group), answer)
            checked += 1
            empty += not answer
    assert checked >= 0.9 * len(docs) * len(groups) > 0
    assert 0 < empty < checked  # both texts with and without any gold label were checked


TEXT = "Marie Curie was born in Warsaw. 张三质押了股份。"


@pytest.mark.parametrize("use_grammar", [True, False], ids=["grounded", "json-schema"])
def test_compact_refuses_empty_lists_out_of_order_and_repeated_keys(use_grammar):
    def accepts(task, group, answer) -> bool:
        if use_grammar:
            return grounded_accepts(task, group, TEXT, answer)
        return schema_accepts(task.json_schema(group, "compact"), answer)

    ner = TASKS["ner"]
    group = ner.labels(["person", "location", "organization"])
    assert accepts(ner, group, {})
    assert accepts(ner, group, {"person": ["Marie Curie"]})
    assert accepts(ner, group, {"location": ["Warsaw"]})
    assert accepts(ner, group, {"person": ["Marie Curie"], "location": ["Warsaw"]})
    assert not accepts(ner, group, {"person": ["Marie Curie"], "location": []})  # an empty list
    assert not accepts(ner, group, {"location": ["Warsaw"], "person": ["Marie Curie"]})  # out of order
    assert not accepts(ner, group, {"date": ["Warsaw"]})  # not a label
    rep = '{"person":["Marie Curie"],"person":["Warsaw"]}'
    grammar = (grounded_grammar(ner.answer_grammar(group, "compact"), TEXT) if use_grammar
               else _schema_grammar(json.dumps(ner.json_schema(group, "compact"))))
    assert not _is_grammar_accept_string(grammar, rep)  # a key twice

    re_task = TASKS["re"]
    rels = re_task.labels(["born in", "spouse"])
    assert accepts(re_task, rels, {"born in": [{"subject": "Marie Curie", "object": "Warsaw"}]})
    assert accepts(re_task, rels, {})
    assert not accepts(re_task, rels, {"born in": [{"subject": "Marie Curie", "object": "Warsaw"}], "spouse": []})
    assert not accepts(re_task, rels, {"spouse": [{"subject": "Marie Curie", "object": "Warsaw"}],
                                       "born in": [{"subject": "Marie Curie", "object": "Warsaw"}]})

    ee = TASKS["ee"]
    events = ee.labels({"质押": ["质押方", "质押物"], "收购": ["收购方"]})
    assert accepts(ee, events, {"质押": [{"trigger": "质押", "arguments": {"质押方": "张三"}}]})
    assert accepts(ee, events, {"质押": [{"trigger": "质押", "arguments": {}}]})
    assert accepts(ee, events, {"质押": [{"trigger": "质押", "arguments": {"质押方": "张三", "质押物": "股份"}}]})
    assert not accepts(ee, events, {"质押": [{"trigger": "质押", "arguments": {"质押方": "张三", "质押物": ""}}]})
    assert not accepts(ee, events, {"质押": [{"trigger": "质押", "arguments": {"质押物": "股份", "质押方": "张三"}}]})
    assert not accepts(ee, events, {"质押": [], "收购": []})


def test_full_shape_is_unchanged():
    ner = TASKS["ner"]
    group = ner.labels(["person", "location"])
    assert grounded_accepts(ner, group, TEXT, {"person": ["Marie Curie"], "location": []}, "full")
    assert not grounded_accepts(ner, group, TEXT, {"person": ["Marie Curie"]}, "full")
    assert ner.json_schema(group)["required"] == ["person", "location"]
    assert ner.json_schema(group, "compact")["required"] == []
    with pytest.raises(ValueError, match="unknown answer shape"):
        ner.json_schema(group, "sparse")


@pytest.mark.parametrize("task,schema,answer,records", [
    ("ner", ["person", "location"], '{"location":["Warsaw"]}', [("Warsaw", "location")]),
    ("ner", ["person", "location"], "{}", []),
    ("re", ["born in", "spouse"], '{"spouse":[{"subject":"Marie Curie","object":"Pierre Curie"}]}',
     [("Marie Curie", "spouse", "Pierre Curie")]),
    ("ee", {"质押": ["质押方", "质押物"]}, '{"质押":[{"trigger":"质押","arguments":{"质押物":"股份"}}]}',
     [("质押", "质押", [("质押物", "股份")])]),
])
def test_absent_keys_parse_as_none(task, schema, answer, records):
    t = TASKS[task]
    parsed = t.parse(answer, t.labels(schema))
    assert parsed.ok and not parsed.warnings
    assert parsed.records == records


def _extract(engine: ScriptedEngine, grounded: bool = True, adapter: str | None = None) -> None:
    options = ExtractOptions(grounded=grounded, adapter=adapter)
    asyncio.run(Extractor(engine, TemplateRegistry.default()).extract(
        "ner", "Marie Curie was born in Warsaw.", ["person", "location"], options))


def test_extractor_asks_in_the_engines_shape():
    full, compact = ScriptedEngine(lambda p, s: "{}"), ScriptedEngine(lambda p, s: "{}", answer_shape="compact")
    for engine in (full, compact):
        _extract(engine)
        _extract(engine, grounded=False)
    assert full.grammars[0].startswith('root ::= "{" "\\"person\\""')  # every key, in order
    assert compact.grammars[0].startswith('root ::= "{}" | "{" root_0 "}"')
    assert full.calls[1][2]["required"] == ["person", "location"]
    assert compact.calls[1][2]["required"] == [] and compact.calls[1][2]["properties"]["person"]["minItems"] == 1


def test_run_time_adapters_answer_in_their_own_shape():
    engine = ScriptedEngine(lambda p, s: "{}", adapters={"new": "3", "old": "2"}, adapter_shapes={"new": "compact"})
    assert answer_shape(engine) == {} and answer_shape(engine, "new") == {"shape": "compact"}
    assert answer_shape(engine, "old") == {}  # declares nothing: trained on the full shape
    _extract(engine, adapter="new")
    assert engine.grammars[-1].startswith('root ::= "{}"')


# --- the model folder declares it ------------------------------------------------------------


def _folder(tmp_path, sidecar: dict | None = None):
    folder = tmp_path / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    if sidecar is not None:
        (folder / SIDECAR).write_text(json.dumps(sidecar))
    return folder


def test_inspection_reads_the_answer_shape(tmp_path):
    assert inspect_model(_folder(tmp_path), native_bf16=False).answer_shape == "full"
    compact = inspect_model(_folder(tmp_path / "c", {"prompt_format": "chat", "answer_shape": "compact"}),
                            native_bf16=False)
    assert compact.answer_shape == "compact" and "answer shape compact" in compact.describe()
    odd = inspect_model(_folder(tmp_path / "o", {"answer_shape": "sparse"}), native_bf16=False)
    assert odd.answer_shape == "full" and any("answer_shape 'sparse'" in w for w in odd.warnings)


def test_sidecar_keeps_the_shape_and_adapters_declare_theirs(tmp_path):
    folder = _folder(tmp_path)
    set_answer_shape(folder, "compact")
    write_sidecar(folder, "chat", "test")  # a prompt format written later keeps the shape
    assert json.loads((folder / SIDECAR).read_text()) == {"prompt_format": "chat", "source": "test",
                                                          "answer_shape": "compact"}
    assert answer_shape_of(folder) == ("compact", None)
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    assert adapter_answer_shape(run / "adapter") is None
    (run / "manifest.json").write_text(json.dumps({"answer_shape": "compact"}))  # a `train fit` folder
    assert adapter_answer_shape(run / "adapter") == "compact"


def test_shipped_v2_adapter_declares_the_full_shape(tmp_path):
    from ie_service.models.embedded import ADAPTER_DIR, _declare_shape

    assert adapter_answer_shape(ADAPTER_DIR) == "full"
    merged = _folder(tmp_path)
    _declare_shape(merged, ADAPTER_DIR)
    assert answer_shape_of(merged)[0] == "full"
    adapter = tmp_path / "v3"
    adapter.mkdir()
    (adapter / "manifest.json").write_text(json.dumps({"version": "3", "answer_shape": "compact"}))
    _declare_shape(merged, adapter)  # a merge made before the manifest said so is brought in line
    assert answer_shape_of(merged)[0] == "compact"
