"""The adapter's training data and training loop.

Converter tests: a training prompt is byte-identical to the prompt the extractor sends for
the same text and schema; every training answer is valid JSON of the constrained schema and
parses back to the gold records (all of them, on every training set); no test-set sentence
is in any training split. A tiny real training run: the loss goes down and the adapter
merges with ``weights merge-lora`` and is served by the engine.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import jsonschema
import pytest
from transformers import AutoTokenizer

from ie_service.models.embedded import ADAPTER_DIR, adapter_version, ensure_base_model, resolve_embedded
from ie_service.evaluation import datasets
from ie_service.extraction.extractor import Extractor
from ie_service.extraction.tasks import TASKS
from ie_service.extraction.tasks.base import Grounder
from ie_service.extraction.chunking import Chunk
from ie_service.extraction.parsing import value_text
from ie_service.extraction.templates import TemplateRegistry
from ie_service.extraction.wire import ExtractOptions
from ie_service.models.prompt_formats import ChatFormat
from ie_service.training.examples import RENAMES, ExampleBuilder, Inventory, build_examples, renamed
from ie_service.training.sources import SOURCES, by_name, training_splits

from fakes import ScriptedEngine


TRAIN_DIR = datasets.data_dir() / "train"
needs_data = pytest.mark.skipif(not TRAIN_DIR.is_dir(), reason=f"no training data at {TRAIN_DIR}")


@pytest.fixture(scope="module")
def chat() -> ChatFormat:
    return ChatFormat(AutoTokenizer.from_pretrained(ensure_base_model()))


class ChatEngine(ScriptedEngine):
    """The scripted engine with the embedded model's real chat template."""

    def __init__(self, fmt: ChatFormat) -> None:
        super().__init__(lambda p, s: "{}")
        self.fmt = fmt

    def render(self, instruction: str, input: str = "") -> str:
        return self.fmt.render(instruction, input)


@pytest.mark.parametrize("task,language,text,schema", [
    ("ner", "en", "Barack Obama met Angela Merkel in Berlin.", ["person", "location"]),
    ("ner", "zh", "李明在北京的清华大学工作。", {"PER": "人名", "LOC": "", "ORG": ""}),
    ("re", "en", "Marie Curie was married to Pierre Curie.", {"spouse": "husband or wife"}),
    ("ee", "zh", "张三将500万股质押给中信证券。", {"质押": ["质押方", "质押物", "质权方"]}),
])
def test_training_prompt_is_byte_identical_to_the_served_prompt(chat, task, language, text, schema):
    engine = ChatEngine(chat)
    options = ExtractOptions(language=language)
    asyncio.run(Extractor(engine, TemplateRegistry.default()).extract(task, text, schema, options))
    served = [prompt for prompt, _, _ in engine.calls]
    gold = datasets.GoldDoc(id="x", text=text)
    trained = ExampleBuilder(chat.render).example(task, language, gold, schema)["prompt"]
    assert served == [trained]


_VALIDATORS: dict[str, jsonschema.Draft202012Validator] = {}


def _validator(schema: dict) -> jsonschema.Draft202012Validator:
    key = json.dumps(schema, sort_keys=True)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema.Draft202012Validator(schema)
    return _VALIDATORS[key]


def _answer_is_valid(example: dict) -> tuple:
    """The answer validates against the constrained schema (of the example's answer shape)
    and parses without warnings."""
    task = TASKS[example["task"]]
    group = task.labels(example["schema"])
    answer = json.loads(example["answer"])
    shape = example.get("answer_shape", "full")
    _validator(task.json_schema(group, shape)).validate(answer)
    names = [label.name for label in group]
    assert list(answer) == (names if shape == "full" else [n for n in names if n in answer])
    parsed = task.parse(example["answer"], group)
    assert parsed.ok and not parsed.warnings
    return task, group, parsed


def _same_records(example: dict, doc: datasets.GoldDoc) -> bool:
    """Parsed and grounded, the answer gives exactly the doc's gold tuples of its labels."""
    task, group, parsed = _answer_is_valid(example)
    grounder = Grounder(doc.text, Chunk(doc.text, 0))
    records = task.build(parsed.records, group, grounder)
    predicted = task.predicted_tuples({task.records_field: [r.model_dump() for r in records]})
    names = {label.name for label in group}
    for kind, gold in task.gold_tuples(doc).items():
        # gold spans as the parser reads any span (a quoted span loses its quotes: FewRel's '" My Life "')
        wanted = {(g[0], *(value_text(x) for x in g[1:])) for g in gold if g[0].split(":")[0] in names}
        if grounder.ungrounded or {tuple(p) for p in predicted[kind]} != wanted:
            return False
    return True


@needs_data
@pytest.mark.parametrize("source,shape", [(s.name, "full") for s in SOURCES]
                         + [(s.name, "compact") for s in SOURCES if s.name in ("wnut17", "fewrel", "phee")])
def test_every_training_answer_parses_back_to_the_gold(chat, source, shape):
    src = by_name([source])[0]
    train, _, _ = training_splits(TRAIN_DIR, [src])[source]
    docs = {d.id: d for d in train}
    examples, _ = build_examples(TRAIN_DIR, [src], chat.render, seed=3, variants=1, shape=shape)
    assert {ex.get("answer_shape", "full") for ex in examples} == {shape}
    assert len(examples) >= 0.8 * len(train)  # only documents over the grammar's bounds are left out
    mapping = RENAMES.get(source)
    for ex in examples:
        doc = docs[ex["id"]]
        candidates = [doc, renamed(doc, mapping)] if mapping else [doc]
        assert any(_same_records(ex, d) for d in candidates), ex


@needs_data
def test_no_test_sentence_in_any_training_split():
    test_texts = {" ".join(d.text.split()) for name in datasets.NAMED for d in datasets.load(name)}
    for src in SOURCES:
        train, dev, _ = training_splits(TRAIN_DIR, [src])[src.name]
        train_texts = {" ".join(d.text.split()) for d in train}
        assert not train_texts & test_texts, src.name
        assert not train_texts & {" ".join(d.text.split()) for d in dev}, f"{src.name}: dev in train"


@needs_data
def test_fewrel_zero_shot_relations_never_trained():
    from ie_service.training.sources import FEWREL_HELD_OUT, fewrel_names, fewrel_splits

    held = {fewrel_names(TRAIN_DIR)[p][0] for p in FEWREL_HELD_OUT}
    splits = fewrel_splits(TRAIN_DIR)
    assert not {r for d in splits["train"] for _, r, _ in d.relations} & held
    assert {r for d in splits["zeroshot"] for _, r, _ in d.relations} == held


FEWREL_ROWS = [  # (relation id, head, tail) of known rows: the head is the relation's subject,
    # also where the text names it second ("..., the son of William Henry Vanderbilt")
    ("P155", "2016 Rio Olympics", "2012 London Olympics"),  # follows
    ("P40", "William Henry Vanderbilt", "Frederick William Vanderbilt"),  # child
    ("P25", "Aino Ackté", "Emmy Achté"),  # mother
    ("P361", "Sinemurian", "Early Jurassic"),  # part of
]


@needs_data
@pytest.mark.parametrize("shape", ["full", "compact"])
def test_fewrel_rows_render_the_subject_as_head(chat, shape):
    """Direction at the root (issue 29): FewRel's ``h`` is the Wikidata subject and the
    rendered answer's ``subject`` is that span, whatever the order in the text."""
    from ie_service.training.sources import fewrel_names, read_fewrel

    names = fewrel_names(TRAIN_DIR)
    by_rel = read_fewrel(TRAIN_DIR / "fewrel/val_wiki.json", names)
    builder = ExampleBuilder(chat.render, shape=shape)
    subject_named_second = 0
    for pid, head, tail in FEWREL_ROWS:
        rel = names[pid][0]
        (doc,) = [d for d in by_rel[pid] if d.relations == [(head, rel, tail)]][:1]
        answer = json.loads(builder.example("re", "en", doc, [rel, "spouse"])["answer"])
        expected = {rel: [{"subject": head, "object": tail}]}
        assert answer == (expected | {"spouse": []} if shape == "full" else expected)
        subject_named_second += doc.text.index(head) > doc.text.index(tail)
    assert subject_named_second >= 2  # not the text's order


@needs_data
def test_knowledgenet_and_pubmed_rows_render_the_subject_as_head(chat):
    """KnowledgeNet's subject (the organization of "founded by", typed or not) and FewRel
    PubMed's subject-first copy are the rendered heads."""
    from ie_service.training.sources import read_fewrel_pubmed, read_knowledgenet

    builder = ExampleBuilder(chat.render, shape="compact")
    kn = [d for d in read_knowledgenet(TRAIN_DIR / "knowledgenet/train.jsonl")
          if d.text.startswith("CRS was established in 2003 by Mike Clark")]
    (doc,) = kn
    assert ("CRS", "founded by", "Mike Clark") in doc.relations and "founded by" in doc.extra["annotated"]
    typed = json.loads(builder.example("re", "en", doc, [{"relation": "founded by", "head_type": "organization",
                                                          "tail_type": "founder"}])["answer"])
    assert typed["founded by"][0] == {"organization": "CRS", "founder": "Mike Clark"}
    plain = json.loads(builder.example("re", "en", doc, ["founded by"])["answer"])
    assert plain["founded by"][0] == {"subject": "CRS", "object": "Mike Clark"}
    pubmed = [d for d in read_fewrel_pubmed(TRAIN_DIR / "fewrel_pubmed/val_pubmed.directed.json")
              if d.relations == [("hsv", "causative agent of", "recurrent genital herpes")]]
    answer = json.loads(builder.example("re", "en", pubmed[0], ["causative agent of"])["answer"])
    assert answer == {"causative agent of": [{"subject": "hsv", "object": "recurrent genital herpes"}]}


@needs_data
def test_knowledgenet_schemas_are_typed_and_distractors_known_absent(chat):
    src = by_name(["knowledgenet"])[0]
    examples, _ = build_examples(TRAIN_DIR, [src], chat.render, seed=1, variants=1, shape="compact")
    docs = {d.id: d for d in training_splits(TRAIN_DIR, [src])["knowledgenet"][0]}
    typed = [ex for ex in examples if isinstance(ex["schema"], list) and isinstance(ex["schema"][0], dict)]
    assert 0.3 < len(typed) / len(examples) < 0.7
    for ex in examples:
        schema = ex["schema"]
        names = [r["relation"] if isinstance(r, dict) else r for r in schema] if isinstance(schema, list) else list(schema)
        assert set(names) <= set(docs[ex["id"]].extra["annotated"]), ex["id"]


@needs_data
def test_fewrel_follows_points_from_the_later_to_the_earlier():
    """A data-level check of FewRel's direction: in "X follows Y" rows where both ends hold a
    year, X's year is the later one (228 of 229 rows; the one exception is a FewRel error)."""
    import re as regex

    from ie_service.training.sources import fewrel_names, read_fewrel

    year = regex.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
    later = earlier = 0
    for doc in read_fewrel(TRAIN_DIR / "fewrel/val_wiki.json", fewrel_names(TRAIN_DIR))["P155"]:
        (head, _, tail), = doc.relations
        h, t = year.findall(head), year.findall(tail)
        if h and t and h[0] != t[0]:
            later += int(h[0]) > int(t[0])
            earlier += int(h[0]) < int(t[0])
    assert later > 200 and earlier <= 0.02 * later


def test_train_commands_default_to_the_compact_shape(tmp_path):
    from ie_service.cli import build_parser
    from ie_service.training.fit import answer_shape_of
    from ie_service.errors import UserInputError

    parser = build_parser()
    assert parser.parse_args(["train", "data", "--out", "x.jsonl"]).answer_shape == "compact"
    assert parser.parse_args(["train", "data", "--out", "x", "--answer-shape", "full"]).answer_shape == "full"
    assert parser.parse_args(["train", "run", "--from", "a.jsonl", "--out", "o"]).answer_shape == "compact"
    assert answer_shape_of([{"answer_shape": "compact"}] * 2) == "compact"
    assert answer_shape_of([{"prompt": "p", "answer": "{}"}]) == "full"  # rendered before shapes
    with pytest.raises(UserInputError, match="mix answer shapes"):
        answer_shape_of([{"answer_shape": "compact"}, {"answer_shape": "full"}])


def test_label_groups_hold_gold_labels_and_distractors_in_bounds(chat):
    rng = random.Random(0)
    docs = [datasets.GoldDoc(id=str(i), text="Obama visited Paris.",
                             entities=[("Obama", "person"), ("Paris", "location")]) for i in range(200)]
    inv = Inventory.of("ner", docs)
    pool = ["person", "location", "organization", "product", "event", "date", "work", "group"]
    src = by_name(["wnut17"])[0]
    made = list(ExampleBuilder(chat.render).for_source(src, docs, inv, pool, rng, 1, {}))
    sizes = {len(ex["schema"]) for ex in made}
    assert max(sizes) <= TASKS["ner"].labels_per_prompt and min(sizes) >= 1
    assert any(json.loads(ex["answer"]).get("person") == ["Obama"] for ex in made)
    assert any(not any(json.loads(ex["answer"]).values()) for ex in made)  # all labels absent
    assert len({tuple(ex["schema"]) for ex in made}) > 20  # shuffled, varied


def test_shipped_adapter_has_manifest_card_and_fits_the_package():
    weights = ADAPTER_DIR / "adapter_model.safetensors"
    assert weights.stat().st_size <= 25 * 1024 * 1024
    manifest = json.loads((ADAPTER_DIR / "manifest.json").read_text())
    for key in ("examples", "hyperparameters", "tokens_seen", "machine", "commit", "reproduce", "scores"):
        assert key in manifest, key
    card = (ADAPTER_DIR / "README.md").read_text()
    for license in ("CC BY 4.0", "CC BY-SA 4.0", "MIT"):
        assert license in card


def test_adapter_version_is_the_cache_key(tmp_path):
    copy = tmp_path / "adapter"
    copy.mkdir()
    for f in ADAPTER_DIR.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    assert adapter_version(copy) == adapter_version(ADAPTER_DIR)
    with (copy / "adapter_model.safetensors").open("ab") as f:
        f.write(b"\0")
    assert adapter_version(copy) != adapter_version(ADAPTER_DIR)


def test_embedded_names():
    assert resolve_embedded("some/folder") is None
    path, name = resolve_embedded("embedded:base")
    assert path == ensure_base_model() and "base" in name


def _tiny_examples(chat, path: Path) -> None:
    builder = ExampleBuilder(chat.render, shape="compact")
    rows = []
    for i, (person, city) in enumerate([("Alice Smith", "Paris"), ("Bob Jones", "Rome"),
                                        ("Carla Diaz", "Lima"), ("Dan Wu", "Oslo")] * 3):
        doc = datasets.GoldDoc(id=str(i), text=f"{person} lives in {city}.",
                               entities=[(person, "person"), (city, "location")])
        rows.append(builder.example("ner", "en", doc, ["person", "location"]))
    with path.open("w") as f:
        for r in rows + [{**r, "split": "dev"} for r in rows[:4]]:
            f.write(json.dumps(r) + "\n")


@pytest.mark.engine(lane="side")  # its own small server (tests/lanes.py)
def test_tiny_training_run_lowers_loss_merges_and_serves(chat, tmp_path):
    from ie_service.training import fit

    examples = tmp_path / "tiny.jsonl"
    _tiny_examples(chat, examples)
    out = tmp_path / "run"
    assert fit.main(["--examples", str(examples), "--out", str(out), "--model", str(ensure_base_model()),
                     "--max-steps", "6", "--epochs", "2", "--batch-size", "4", "--lr", "2e-3", "--rank", "4",
                     "--snapshots", "2", "--dtype", "float32"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    dev = [d["dev_loss"] for d in manifest["dev_loss"]]
    assert dev[-1] < dev[0] * 0.8, dev
    assert manifest["steps"] == 6 and manifest["tokens_seen"] > 0 and manifest["examples"]["content_md5"]
    assert manifest["answer_shape"] == "compact"  # the examples' shape, for merge-lora to declare

    from ie_service.cli import main

    merged = tmp_path / "merged"
    assert main(["weights", "merge-lora", "--base", str(ensure_base_model()), "--lora",
                 str(out / "adapter"), "--out", str(merged)]) == 0
    assert json.loads((merged / "ie_service.json").read_text())["answer_shape"] == "compact"

    from ie_service.local_server import local_server

    with local_server(["--model", str(merged)], log_path=tmp_path / "server.log") as url:
        import httpx

        r = httpx.post(f"{url}/extract/ner", json={"text": "Eve Stone lives in Bern.",
                                                   "schema": ["person", "location", "date"]}, timeout=300)
        assert r.status_code == 200 and r.json()["stats"]["unparseable"] == 0
        # the folder declares compact answers: no key for a label without entities ("date")
        (raw,) = r.json()["raw_output"]
        answer = json.loads(raw)
        assert "date" not in answer and all(answer.values()), raw
