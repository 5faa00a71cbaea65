"""Grounded answer grammars (``extraction.grounded_grammar``), checked with xgrammar's own
matcher at the string level: every answer the grammar accepts has span values that are runs
of the text's units, and every such run (quotes, backslashes, tabs, emoji, Chinese) is accepted."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from xgrammar.testing import _is_grammar_accept_string

from ie_service.extraction.chunking import Chunk
from ie_service.extraction.grounded_grammar import (
    grounded_chunks, grounded_grammar, json_escape, span_ok, symbols, units,
)
from ie_service.extraction.tasks import TASKS

NER = TASKS["ner"]
GROUP = NER.labels(["person", "location"])
ALPHABET = list("ab Z9_.,;:'\"\\/\t\n-") + ["中", "文", "。", "😀", "é", "\u0001", "ｘ"]
texts = st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=40).filter(lambda t: units(t))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def accepts(grammar: str, answer: dict) -> bool:
    return _is_grammar_accept_string(grammar, json.dumps(answer, ensure_ascii=False, separators=(",", ":")))


def ner_grammar(text: str) -> str:
    return grounded_grammar(NER.answer_grammar(GROUP), text)


def runs(text: str) -> list[str]:
    """Every run of units (start of one unit to the end of another), as text."""
    bounds = units(text)
    return sorted({text[s:e] for i, (s, _) in enumerate(bounds) for _, e in bounds[i:]})


def escaped_answer(values: list[str]) -> str:
    """The answer as the grammar spells it (json_escape), not as json.dumps would."""
    return '{"person":[' + ",".join(f'"{json_escape(v)}"' for v in values) + '],"location":[]}'


@FAST
@given(texts, st.data())
def test_every_run_of_units_is_accepted(text, data):
    grammar = ner_grammar(text)
    value = data.draw(st.sampled_from(runs(text)))
    assert _is_grammar_accept_string(grammar, escaped_answer([value]))
    assert json.loads(escaped_answer([value]))["person"] == [value]  # the spelling is valid JSON


@FAST
@given(texts, st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=12))
def test_what_is_accepted_is_a_run_of_units(text, value):
    accepted = _is_grammar_accept_string(ner_grammar(text), escaped_answer([value]))
    assert accepted == span_ok(value, text)


@FAST
@given(texts, st.data())
def test_cut_runs_are_refused(text, data):
    """Half a word (unless the same characters are a run of units elsewhere in the text:
    "9" of "99:9"), leading or trailing whitespace: not a span."""
    (s, e) = data.draw(st.sampled_from(units(text)))
    grammar = ner_grammar(text)
    if e - s > 1:
        half = text[s + 1:e]
        assert _is_grammar_accept_string(grammar, escaped_answer([half])) == span_ok(half, text)
    assert not _is_grammar_accept_string(grammar, escaped_answer([" " + text[s:e]]))
    assert not _is_grammar_accept_string(grammar, escaped_answer([text[s:e] + " "]))


def test_units_split_words_punctuation_and_cjk():
    assert [u for u, is_unit in symbols("Hi, U.S. 中文 x2y") if is_unit] == \
        ["Hi", ",", "U", ".", "S", ".", "中", "文", "x2y"]
    assert [w for w, is_unit in symbols("a \t b") if not is_unit] == [" \t "]


def test_escapes_quotes_backslashes_control_characters_and_keeps_non_bmp():
    text = 'He said "hi" at C:\\dir\twith 😀 and 中文.'
    grammar = ner_grammar(text)
    for value in ['"hi"', 'C:\\dir\twith 😀', "中文", "😀 and 中"]:
        assert _is_grammar_accept_string(grammar, escaped_answer([value])), value
    assert json_escape('a"b\\c\td\x01😀') == 'a\\"b\\\\c\\u0009d\\u0001😀'
    assert not _is_grammar_accept_string(grammar, escaped_answer(["hi at"]))  # the quote is missing


def test_record_shapes_of_every_task():
    text = "Marie Curie was born in Warsaw. 张三质押了股份。"
    ner = ner_grammar(text)
    assert accepts(ner, {"person": ["Marie Curie", "张三"], "location": []})
    assert not accepts(ner, {"person": ["Marie"]})  # every label is required
    assert not accepts(ner, {"person": ["Marie"] * 13, "location": []})  # at most 12 items
    re_task = TASKS["re"]
    re_g = grounded_grammar(re_task.answer_grammar(re_task.labels(["born in"])), text)
    assert accepts(re_g, {"born in": [{"subject": "Marie Curie", "object": "Warsaw"}]})
    assert not accepts(re_g, {"born in": [{"subject": "Marie Curie", "object": "Paris"}]})
    ee = TASKS["ee"]
    ee_g = grounded_grammar(ee.answer_grammar(ee.labels({"质押": ["质押方", "质押物"]})), text)
    assert accepts(ee_g, {"质押": [{"trigger": "质押", "arguments": {"质押方": "张三", "质押物": ""}}]})
    assert accepts(ee_g, {"质押": [{"trigger": "质押", "arguments": {"质押方": ["张三", "Marie"], "质押物": "股份"}}]})
    assert not accepts(ee_g, {"质押": [{"trigger": "质押", "arguments": {"质押方": "王五", "质押物": ""}}]})
    assert not accepts(ee_g, {"质押": [{"trigger": "质押", "arguments": {"质押物": ""}}]})


@pytest.mark.parametrize("task", ["ner", "re", "ee"])
def test_gold_answers_of_real_sets_are_accepted(task):
    """The adapter's training answers (gold spans in the text's own spelling) fit the grammar."""
    docs = {
        "ner": [("Paris Hilton flew to Paris .", ["person", "location"],
                 {"person": ["Paris Hilton"], "location": ["Paris"]})],
        "re": [("Steve Jobs founded Apple in 1976 .", ["founded by"],
                {"founded by": [{"subject": "Apple", "object": "Steve Jobs"}]})],
        "ee": [("公司于3月1日质押了1,000万股。", {"质押": ["质押物", "时间"]},
                {"质押": [{"trigger": "质押", "arguments": {"质押物": "1,000万股", "时间": "3月1日"}}]})],
    }[task]
    t = TASKS[task]
    for text, schema, answer in docs:
        assert accepts(grounded_grammar(t.answer_grammar(t.labels(schema)), text), answer)


def test_long_chunks_are_cut_for_grounding():
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    out = grounded_chunks([Chunk(text, 10)], limit=300)
    assert len(out) > 1 and all(len(c.text) <= 300 for c in out)
    assert all(text[c.offset - 10:c.offset - 10 + len(c.text)] == c.text for c in out)
    short = Chunk("short", 0)
    assert grounded_chunks([short], limit=300) == [short]
