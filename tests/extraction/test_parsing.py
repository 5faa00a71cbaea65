"""Parsers and JSON finding as pure functions, on every answer shape the prompts ask for."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ie_service.extraction.lenient_json import find_json
from ie_service.extraction.parsing import LabelSet
from ie_service.extraction.tasks.ee import parse_ee
from ie_service.extraction.tasks.ner import parse_ner
from ie_service.extraction.tasks.re import parse_re

NER_LABELS = LabelSet(["person", "location", "creative-work"])
RELS = LabelSet(["founded by", "located in", "创始人"])
EVENTS = {"质押": ["质押方", "质押物"], "Attack": ["attacker", "target"]}


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is: {"a": [1, 2]} hope it helps', {"a": [1, 2]}),
        ("```json\n[1, 2]\n```", [1, 2]),
        ("[{'head': 'A', 'relation': 'r', 'tail': 'B'}]", [{"head": "A", "relation": "r", "tail": "B"}]),
        ('junk { broken [ then {"ok": true}', {"ok": True}),
        ('{"s": "brace } inside"}', {"s": "brace } inside"}),
        ("no json here", None),
        ("", None),
        ("[" * 5000, None),
    ],
)
def test_find_json(text, expected):
    assert find_json(text) == expected


def test_ner_oneke_json_with_label_variants_and_unknown_label():
    out = parse_ner('{"Person": ["Obama", "NAN"], "creative_work": "Hamlet", "city": ["Paris"]}', NER_LABELS)
    assert out.records == [("Obama", "person"), ("Hamlet", "creative-work")]
    assert out.ok and any("city" in w for w in out.warnings)


def test_ner_list_of_objects_and_pairs():
    out = parse_ner('[{"entity": "Obama", "type": "person"}, ["Berlin", "location"], {"name": "x", "type": "bogus"}]',
                    NER_LABELS)
    assert out.records == [("Obama", "person"), ("Berlin", "location")]


def test_ner_free_text_tuples_either_order_and_label_lines():
    assert parse_ner("(Obama, person)\n（柏林，location）\n(person, Merkel)", NER_LABELS).records == [
        ("Obama", "person"), ("柏林", "location"), ("Merkel", "person")]
    assert parse_ner("person: Obama, Merkel\nlocation: Berlin", NER_LABELS).records == [
        ("Obama", "person"), ("Merkel", "person"), ("Berlin", "location")]


def test_ner_garbage_is_not_ok_but_empty_is():
    assert parse_ner("I am a language model.", NER_LABELS).ok is False
    assert parse_ner("", NER_LABELS).ok is True
    assert parse_ner("{}", NER_LABELS).ok is True


# The reference prompts' output shapes (KnowLM examples/ie_prompt.py), all must parse.
@pytest.mark.parametrize(
    "text",
    [
        '{"founded by": [{"subject": "Microsoft", "object": "Bill Gates"}]}',
        "[{'head':'Microsoft', 'relation':'founded by', 'tail':'Bill Gates'}]",
        "(Microsoft, founded by, Bill Gates)",
        "[Microsoft, founded by, Bill Gates]",
        "{Microsoft, founded by, Bill Gates}",
        "<Microsoft, founded by, Bill Gates>",
        "The answer is:\n(Microsoft,founded by,Bill Gates).",
        "founded by：Microsoft,Bill Gates",
        '[["Microsoft", "founded by", "Bill Gates"]]',
        '{"subject": "Microsoft", "predicate": "Founded_By", "object": "Bill Gates"}',
    ],
)
def test_re_all_reference_shapes(text):
    out = parse_re(text, RELS)
    assert out.records == [("Microsoft", "founded by", "Bill Gates")], text
    assert out.ok


def test_re_chinese_shapes():
    assert parse_re("(微软,创始人,比尔·盖茨)", RELS).records == [("微软", "创始人", "比尔·盖茨")]
    assert parse_re("（微软，创始人，比尔·盖茨）", RELS).records == [("微软", "创始人", "比尔·盖茨")]
    assert parse_re("创始人：微软,比尔·盖茨\n", RELS).records == [("微软", "创始人", "比尔·盖茨")]


def test_re_entity_with_comma_and_unknown_relation():
    out = parse_re("(Apple, Inc., founded by, Steve Jobs)\n(A, married to, B)", RELS)
    assert out.records == [("Apple, Inc.", "founded by", "Steve Jobs")]
    assert any("married to" in w for w in out.warnings)


def test_ee_oneke_shape_with_nan_and_multi_values():
    text = ('{"质押": [{"trigger": "质押", "arguments": {"质押方": "张三", "质押物": ["股份", "NAN"]}}],'
            ' "Attack": []}')
    out = parse_ee(text, EVENTS)
    assert out.records == [("质押", "质押", [("质押方", "张三"), ("质押物", "股份")])]


def test_ee_list_shape_with_role_objects_and_unknowns():
    text = ('[{"event_type": "attack", "trigger": "bombed", "arguments": [{"role": "Attacker", '
            '"argument": "rebels"}, {"role": "weapon", "argument": "bombs"}]}, {"event_type": "Party"}]')
    out = parse_ee(text, EVENTS)
    assert out.records == [("Attack", "bombed", [("attacker", "rebels")])]
    assert any("weapon" in w for w in out.warnings) and any("Party" in w for w in out.warnings)


JUNKY = st.one_of(
    st.text(max_size=400),
    st.text(alphabet="{}[]()<>（），,:：'\"\\ \nabc质押founded bypersonNAN", max_size=300),
)


@settings(max_examples=400, deadline=None)
@given(JUNKY)
def test_parsers_never_raise(text):
    for out in (parse_ner(text, NER_LABELS), parse_re(text, RELS), parse_ee(text, EVENTS)):
        assert isinstance(out.records, list)
        for record in out.records:
            assert all(part is not None for part in record[:1])
