"""The task contract: the registry checks tasks when they load, and each built-in task's
gold answer is exactly what its grammar accepts and what its parser reads back."""

import json

import jsonschema
import pytest

from ie_service.gold import GoldDoc, GoldEvent
from ie_service.extraction.chunking import Chunk
from ie_service.extraction.constraints import MAX_ARGUMENT_VALUES, MAX_EVENTS, MAX_ITEMS
from ie_service.extraction.records import Entity
from ie_service.extraction.tasks import TASKS, Grounder, NotExpressible, Task, TaskError
from ie_service.extraction.tasks.ner import NER
from ie_service.extraction.tasks.registry import instantiate
from ie_service.extraction.wire import task_models

TEXT = "Microsoft was founded by Bill Gates and Paul Allen in Albuquerque. 张三将股份质押给中信证券和招商银行。"
DOC = GoldDoc(
    id="d", text=TEXT,
    entities=[("Microsoft", "organization"), ("Bill Gates", "person"), ("Paul Allen", "person"),
              ("Albuquerque", "location"), ("Bill Gates", "person")],  # a repeat
    relations=[("Microsoft", "founded by", "Bill Gates"), ("Microsoft", "founded by", "Paul Allen"),
               ("Microsoft", "located in", "Albuquerque")],
    events=[GoldEvent(type="质押", trigger="质押",
                      arguments=[("质押方", "张三"), ("质押物", "股份"), ("质权方", "中信证券"), ("质权方", "招商银行")])],
)
SCHEMAS = {
    "ner": ["person", "organization", "location", "date"],  # "date": a label with no gold
    "re": ["founded by", "located in", "acquired"],
    "ee": {"质押": ["质押方", "质押物", "质权方", "披露时间"], "减持": ["减持方"]},
}


def compact(answer) -> str:
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def test_builtins_are_registered_in_order():
    assert list(TASKS) == ["ner", "re", "ee"]
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        TASKS["nope"]


TYPED_RE = [{"relation": "founded by", "head_type": "organization", "tail_type": "person"},
            {"relation": "located in", "head_type": "organization", "tail_type": "location"}, "acquired"]


@pytest.mark.parametrize("shape", ["full", "compact"])
@pytest.mark.parametrize("name", [*SCHEMAS, "re-typed"])
def test_gold_answer_fits_the_grammar_and_parses_back_to_the_gold(name, shape):
    task = TASKS[name.split("-")[0]]
    group = task.labels(TYPED_RE if name == "re-typed" else SCHEMAS[name])
    answer = task.gold_answer(DOC, group, shape)
    names = [label.name for label in group]
    assert list(answer) == (names if shape == "full" else [n for n in names if answer.get(n)])
    text = compact(answer)
    jsonschema.validate(json.loads(text), task.json_schema(group, shape))
    parsed = task.parse(text, group)
    assert parsed.ok and parsed.warnings == []
    records = task.build(parsed.records, group, Grounder(TEXT, Chunk(TEXT, 0)))
    response = json.loads(json.dumps({task.records_field: [r.model_dump() for r in records]}))
    predicted = task.predicted_tuples(response)
    gold = task.gold_tuples(DOC)
    assert predicted.keys() == gold.keys()
    for kind in gold:  # the scorer compares sets
        assert set(predicted[kind]) == set(gold[kind])


def test_ee_gold_answer_shapes_roles():
    group = TASKS["ee"].labels(SCHEMAS["ee"])
    answer = TASKS["ee"].gold_answer(DOC, group)
    assert answer == {"质押": [{"trigger": "质押", "arguments": {
        "质押方": "张三", "质押物": "股份", "质权方": ["中信证券", "招商银行"], "披露时间": ""}}], "减持": []}


def test_ee_compact_answer_leaves_out_empty_roles_and_types():
    group = TASKS["ee"].labels(SCHEMAS["ee"])
    assert TASKS["ee"].gold_answer(DOC, group, "compact") == {"质押": [{"trigger": "质押", "arguments": {
        "质押方": "张三", "质押物": "股份", "质权方": ["中信证券", "招商银行"]}}]}


def test_typed_relations_keep_their_ends():
    """A relation with both ends typed is asked as "organization founded by person" and
    answered with pairs keyed by the types, head first: the organization's span is the head
    whatever order the model met the names in, and the grammar admits no other keys."""
    from ie_service.extraction.grounded_grammar import grounded_grammar
    from xgrammar.testing import _is_grammar_accept_string

    re_task = TASKS["re"]
    group = re_task.labels(TYPED_RE + [{"relation": "spouse", "head_type": "person", "tail_type": "Person"}])
    assert re_task.prompt_schema(group) == {"founded by": "organization founded by person",
                                            "located in": "organization located in location",
                                            "acquired": "", "spouse": ""}
    assert [label.keys for label in group] == [("organization", "person"), ("organization", "location"),
                                               ("subject", "object"), ("subject", "object")]
    described = re_task.labels([{**TYPED_RE[0], "description": "who started it"}])
    assert re_task.prompt_schema(described) == {"founded by": "organization founded by person; who started it"}
    answer = {"founded by": [{"organization": "Microsoft", "person": "Bill Gates"}], "located in": [],
              "acquired": [], "spouse": []}
    for shape in ("full", "compact"):
        grammar = grounded_grammar(re_task.answer_grammar(group, shape), TEXT)
        shaped = answer if shape == "full" else {"founded by": answer["founded by"]}
        assert _is_grammar_accept_string(grammar, compact(shaped))
        swapped = {**shaped, "founded by": [{"person": "Bill Gates", "organization": "Microsoft"}]}
        assert not _is_grammar_accept_string(grammar, compact(swapped))  # keys in the declared order
        untyped = {**shaped, "founded by": [{"subject": "Bill Gates", "object": "Microsoft"}]}
        assert not _is_grammar_accept_string(grammar, compact(untyped))
        jsonschema.validate(shaped, re_task.json_schema(group, shape))
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(untyped, re_task.json_schema(group, shape))
    parsed = re_task.parse(compact(answer), group)
    assert parsed.ok and not parsed.warnings and parsed.records == [("Microsoft", "founded by", "Bill Gates")]
    (triple,) = re_task.build(parsed.records, group, Grounder(TEXT, Chunk(TEXT, 0)))
    assert (triple.head.text, triple.head.type, triple.tail.text, triple.tail.type) == (
        "Microsoft", "organization", "Bill Gates", "person")
    gold = re_task.gold_answer(DOC, group, "compact")
    assert gold == {"founded by": [{"organization": "Microsoft", "person": "Bill Gates"},
                                   {"organization": "Microsoft", "person": "Paul Allen"}],
                    "located in": [{"organization": "Microsoft", "location": "Albuquerque"}]}


def test_gold_spans_take_the_texts_spelling():
    doc = GoldDoc(id="x", text="Then Bill Gates spoke.", entities=[("bill gates", "person"), ("Bill  Gates", "person")])
    assert TASKS["ner"].gold_answer(doc, TASKS["ner"].labels(["person"])) == {"person": ["Bill Gates"]}


@pytest.mark.parametrize("name,doc", [
    ("ner", GoldDoc(id="x", text="Bob", entities=[("Alice", "person")])),
    ("ner", GoldDoc(id="x", text=" ".join(f"w{i}" for i in range(20)),
                    entities=[(f"w{i}", "person") for i in range(MAX_ITEMS + 1)])),
    ("ee", GoldDoc(id="x", text="A B", events=[GoldEvent(type="e", trigger=None)])),
    ("ee", GoldDoc(id="x", text="go go go go", events=[GoldEvent(type="e", trigger="go")] * (MAX_EVENTS + 1))),
    ("ee", GoldDoc(id="x", text="go a b c d", events=[GoldEvent(
        type="e", trigger="go", arguments=[("r", v) for v in "abcd"[:MAX_ARGUMENT_VALUES + 1]])])),
])
def test_gold_beyond_the_grammar_is_not_expressible(name, doc):
    schema = {"e": ["r"]} if name == "ee" else ["person"]
    with pytest.raises(NotExpressible):
        TASKS[name].gold_answer(doc, TASKS[name].labels(schema))


def test_gold_label_names_and_schema():
    assert TASKS["ner"].gold_label_names(DOC) == ["location", "organization", "person"]
    assert TASKS["re"].gold_label_names(DOC) == ["founded by", "located in"]
    assert TASKS["ee"].gold_label_names(DOC) == ["质押"]
    assert TASKS["ee"].gold_schema([DOC]) == {"质押": sorted(["质押方", "质押物", "质权方"])}


def test_wire_models_are_generated_per_task():
    models = task_models(TASKS["re"])
    assert [m.__name__ for m in (models.request, models.batch_request, models.response, models.batch_response)] == [
        "RERequest", "REBatchRequest", "REResponse", "REBatchResponse"]
    req = models.request.model_validate({"text": "t", "schema": [{"relation": "r", "head_type": "org"}]})
    assert req.model_dump(by_alias=True)["schema"][0]["head_type"] == "org"
    assert "triples" in models.response.model_fields


class Half(Task):
    """Implements nothing: must fail when registered, not on its first request."""

    name = "half"


def test_incomplete_task_is_refused():
    with pytest.raises(TaskError, match="incomplete"):
        instantiate(Half)


@pytest.mark.parametrize("attrs,needle", [
    ({"name": "Bad Name"}, "must match"),
    ({"records_field": "stats"}, "not a free field name"),
    ({"labels_per_prompt": 0}, "positive int"),
    ({"record": dict}, "pydantic model"),
])
def test_malformed_task_attributes_are_refused(attrs, needle):
    broken = type("Broken", (NER,), attrs)
    with pytest.raises(TaskError, match=needle):
        instantiate(broken)


def test_a_complete_task_subclass_registers():
    task = instantiate(type("People", (NER,), {"name": "people"}))
    assert task.name == "people" and task.record is Entity
