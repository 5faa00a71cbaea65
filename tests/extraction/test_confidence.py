"""Confidences (issue 29 #3) and eval's trust figures, without a model: the span → token
mapping and its math on fake generations, ``min_confidence`` on the wire and its 4xx, the
CLI options, the KG exports, and eval's threshold table, AUROC, reversed triples and schema
stability on toy data."""

from __future__ import annotations

import csv
import json
import math

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.engine.generation import Generation, char_offsets
from ie_service.evaluation.trust import (
    THRESHOLDS, TrustScorer, auroc, distractors, scored_tuples, stability,
)
from ie_service.extraction.chunking import Chunk
from ie_service.extraction.confidence import OutputScores, ScoredGrounder, filter_records, geometric_mean
from ie_service.extraction.tasks import TASKS

# --- span → tokens, and the math -------------------------------------------------------------


def tokens_of(pieces: list[str], logprobs: list[float]) -> Generation:
    """A generation written by ``pieces`` (one token each) with these log-probabilities."""
    offsets, at = [], 0
    for p in pieces:
        offsets.append(at)
        at += len(p)
    return Generation("".join(pieces), 1, len(pieces), "stop", token_logprobs=tuple(logprobs),
                      token_offsets=tuple(offsets))


OUT = ['{"', 'person', '":', ' ["', 'Bar', 'ack', ' Obama', '",', ' "', 'Mer', 'kel', '"]}']
LPS = [0.0, 0.0, 0.0, 0.0, -1.0, -0.5, -0.1, -0.2, 0.0, -2.0, -0.3, -0.05]


def test_a_span_is_its_least_probable_token_quotes_included():
    scores = OutputScores.of(tokens_of(OUT, LPS))
    # "Barack Obama": ' ["' (opens it), Bar, ack, " Obama", '",' (closes it): the least, Bar
    assert scores.tokens(12, 26) == [3, 4, 5, 6, 7]
    assert scores.span("Barack Obama") == round(math.exp(-1.0), 4)
    assert scores.span("Merkel") == round(math.exp(-2.0), 4)
    assert scores.overall() == round(math.exp(sum(LPS) / len(LPS)), 4)
    assert OutputScores.of(tokens_of(['["', 'x', '"]'], [-0.3, 0.0, -0.2])).span("x") == round(math.exp(-0.3), 4)


def test_repeated_values_are_scored_where_each_was_written():
    out = ['{"a": ["', 'X', '"], "b": ["', 'X', '"]}']
    scores = OutputScores.of(tokens_of(out, [0.0, -3.0, 0.0, -0.01, 0.0]))
    first, second = scores.span("X"), scores.span("X")
    assert first == round(math.exp(-3.0), 4) and second == round(math.exp(-0.01), 4)


def test_escaped_free_text_and_missing_values():
    scores = OutputScores.of(tokens_of(['{"t": ["', 'say \\"hi\\"', '"]}'], [0.0, -0.7, 0.0]))
    assert scores.span('say "hi"') == round(math.exp(-0.7), 4)  # found in its JSON spelling
    free = OutputScores.of(tokens_of(["(", "Obama", ", person)"], [-0.05, -0.4, -0.1]))
    assert free.span("Obama") == round(math.exp(-0.4), 4)  # free text: as it stands
    assert free.span("Merkel") == free.overall()  # not in the output: the whole output's mean
    assert OutputScores.of(Generation("x", 1, 1, "stop")) is None  # no log-probabilities


def test_geometric_mean_is_a_probability():
    assert geometric_mean([]) == 1.0 and geometric_mean([0.0, 0.0]) == 1.0
    assert 0.0 <= geometric_mean([-1e9]) <= 1e-6


def test_char_offsets_of_multibyte_tokens():
    # a byte-level tokenizer splits 团 over two tokens: the first decodes to U+FFFD alone
    pieces = {1: b"{\"", 2: "阿".encode(), 3: "团".encode()[:2], 4: "团".encode()[2:], 5: b"\""}

    def decode(ids):
        return b"".join(pieces[i] for i in ids).decode("utf-8", errors="replace")

    text = decode([1, 2, 3, 4, 5])
    assert text == '{"阿团"'
    offsets = char_offsets(decode, [1, 2, 3, 4, 5], text)
    assert offsets == (0, 2, 3, 3, 4)
    scores = OutputScores(text, [0.0, -0.2, -1.0, -0.1, 0.0], offsets)
    assert scores.tokens(3, 4) == [2, 3]  # both halves of 团 wrote it
    assert char_offsets(lambda ids: decode(ids).lstrip(" "), [1], " {\"") == (0,)  # leading space kept


def grounder(text: str, gen: Generation) -> ScoredGrounder:
    return ScoredGrounder(text, Chunk(text, 0), OutputScores.of(gen))


def test_records_of_every_task_carry_their_confidence():
    text = "Microsoft was founded by Bill Gates."
    out = ['{"founded by": [{"subject": "', 'Micro', 'soft', '", "object": "', 'Bill', ' Gates', '"}]}']
    gen = tokens_of(out, [0.0, -0.1, 0.0, -0.2, -1.5, -0.1, 0.0])
    re_task = TASKS["re"]
    group = re_task.labels(["founded by"])
    [triple] = re_task.build(re_task.parse(gen.text, group).records, group, grounder(text, gen))
    assert triple.head.confidence == round(math.exp(-0.2), 4)  # '", "object": "' closes it
    assert triple.tail.confidence == round(math.exp(-1.5), 4)
    assert triple.confidence == min(triple.head.confidence, triple.tail.confidence)

    text = "张三将股份质押给银行。"
    out = ['{"质押": [{"trigger": "', '质押', '", "arguments": {"质押方": "', '张三', '", "质押物": "', '股份', '"}}]}']
    gen = tokens_of(out, [0.0, -0.05, 0.0, -0.9, 0.0, -0.2, 0.0])
    ee = TASKS["ee"]
    group = ee.labels({"质押": ["质押方", "质押物"]})
    [event] = ee.build(ee.parse(gen.text, group).records, group, grounder(text, gen))
    assert event.confidence == event.trigger.confidence == round(math.exp(-0.05), 4)  # not the key "质押"
    assert [a.confidence for a in event.arguments] == [round(math.exp(-0.9), 4), round(math.exp(-0.2), 4)]
    assert filter_records([event], 0.7)[0].arguments == [event.arguments[1]]  # its weak argument goes
    assert filter_records([event], 0.99) == []


# --- the wire: min_confidence ------------------------------------------------------------------


@pytest.fixture
def client():
    def reply(prompt, schema):
        return json.dumps({"person": ["Obama", "Merkel"]})

    engine = ScriptedEngine(reply)
    # "Merkel" is written with low probabilities, everything else with certainty
    engine.token_logprob = lambda text, i: -2.0 if 0 <= i - text.find("Merkel") < 6 else 0.0
    with TestClient(create_app(lambda: engine)) as c:
        yield c


def test_every_record_has_a_confidence_and_min_confidence_filters(client):
    req = {"text": "Obama met Merkel.", "schema": ["person"]}
    body = client.post("/extract/ner", json=req).json()
    conf = {e["text"]: e["confidence"] for e in body["entities"]}
    assert conf["Obama"] == 1.0 and conf["Merkel"] < 0.2
    kept = client.post("/extract/ner", json={**req, "min_confidence": 0.5}).json()
    assert [e["text"] for e in kept["entities"]] == ["Obama"]
    batch = client.post("/extract/ner/batch", json={"texts": [req["text"]] * 2, "schema": ["person"],
                                                    "min_confidence": 1}).json()
    assert [[e["text"] for e in r["entities"]] for r in batch["results"]] == [["Obama"], ["Obama"]]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", None, True])
def test_min_confidence_out_of_range_is_a_422(client, bad):
    r = client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"], "min_confidence": bad})
    assert r.status_code == 422 and "min_confidence" in r.text


def test_cli_options_refuse_values_outside_0_1(capsys):
    from ie_service.cli import main

    for argv in (["extract", "--task", "ner", "--schema", "person", "--min-confidence", "2", "x"],
                 ["kg", "build", "--input", "x", "--out", "y", "--relations", "r", "--min-confidence", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "between 0 and 1" in capsys.readouterr().err


# --- kg: a node and edge property in every export format -----------------------------------------


def test_kg_exports_carry_confidence(tmp_path):
    from ie_service.kg.export import export, to_cypher
    from ie_service.kg.graph import load_graph

    triples = tmp_path / "t.jsonl"
    ms = {"text": "Microsoft", "type": "organization", "confidence": 0.9}
    rows = [{"doc_id": "d1", "triples": [{"head": ms, "relation": "founded by", "confidence": 0.6,
                                          "tail": {"text": "Bill Gates", "confidence": 0.6}},
                                         {"head": {**ms, "confidence": 0.95}, "relation": "founded by",
                                          "confidence": 0.8, "tail": {"text": "Bill Gates", "confidence": 0.8}}]},
            {"doc_id": "d2", "triples": [{"head": {"text": "Apple"}, "relation": "founded by",
                                          "tail": {"text": "Steve Jobs"}}]}]  # an older build: no confidence
    triples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    g = load_graph(triples)
    by_name = {e.name: e for e in g.entities.values()}
    assert by_name["Microsoft"].confidence == 0.95 and by_name["Apple"].confidence is None
    assert sorted((e.doc_id, e.confidence) for e in g.edges) == [("d1", 0.8), ("d2", None)]  # one edge per doc
    nt = export(g, "nt", tmp_path / "g.nt")[0].read_text()
    assert nt.count('/confidence> "0.8"^^<http://www.w3.org/2001/XMLSchema#decimal>') == 2  # the edge, Bill Gates
    from rdflib import Graph as RDFGraph
    turtle = RDFGraph().parse(export(g, "turtle", tmp_path / "g.ttl")[0], format="turtle")
    assert sorted(float(o) for _, p, o in turtle if str(p).endswith("/confidence")) == [0.8, 0.8, 0.95]
    files = {p.name: list(csv.DictReader(p.open())) for p in export(g, "neo4j-csv", tmp_path / "neo")}
    assert sorted(r["confidence:float"] for r in files["relations.csv"]) == ["", "0.8"]
    assert {r["name"]: r["confidence:float"] for r in files["entities.csv"]}["Microsoft"] == "0.95"
    cypher = to_cypher(g)
    assert "e.confidence = row.confidence" in cypher[1]["query"]
    assert "r.confidence = row.confidence" in cypher[3]["query"]
    assert {r["confidence"] for r in cypher[3]["parameters"]["rows"]} == {0.8, None}
    html = export(g, "html", tmp_path / "g.html")[0].read_text()
    assert '"confidence": 0.8' in html or '"confidence":0.8' in html
    from ie_service.kg.stores import open_store, parse_store_spec
    store = open_store(parse_store_spec(f"ladybug:{tmp_path / 'lb'}"))
    try:
        store.load(g, progress=False)
        rows = store.run("MATCH ()-[r:RELATION]->() RETURN r.confidence AS c ORDER BY c")
        assert [r["c"] for r in rows] == [0.8, None]
    finally:
        store.close()


def test_kg_refuses_a_confidence_outside_0_1(tmp_path):
    from ie_service.kg.graph import load_graph
    from ie_service.errors import BadInputFile

    bad = tmp_path / "t.jsonl"
    bad.write_text(json.dumps({"doc_id": "d", "triples": [{"head": {"text": "A"}, "relation": "r",
                                                           "tail": {"text": "B"}, "confidence": 7}]}) + "\n")
    with pytest.raises(BadInputFile, match="confidence"):
        load_graph(bad)


# --- eval: thresholds, AUROC, reversed triples, stability --------------------------------------------


def test_auroc():
    assert auroc([(0.9, True), (0.8, True), (0.2, False)]) == 1.0
    assert auroc([(0.9, False), (0.1, True)]) == 0.0
    assert auroc([(0.5, True), (0.5, False)]) == 0.5  # a tie counts half
    assert auroc([(0.9, True), (0.4, False), (0.6, False), (0.3, True)]) == 0.5
    assert auroc([(0.9, True)]) is None


def test_threshold_table_and_best_threshold():
    s = TrustScorer()
    gold = [("person", "Obama"), ("person", "Merkel"), ("location", "Berlin")]
    pred = [("person", "Obama"), ("person", "Merkel"), ("location", "Paris"), ("person", "Bob")]
    s.add(gold, pred, [0.95, 0.55, 0.35, 0.15])
    report = s.report()
    table = report["thresholds"]["table"]
    assert list(table) == [f"{t:.1f}" for t in THRESHOLDS]
    assert (table["0.1"]["tp"], table["0.1"]["fp"]) == (2, 2)
    assert (table["0.5"]["tp"], table["0.5"]["fp"], table["0.5"]["fn"]) == (2, 0, 1)
    assert (table["0.9"]["tp"], table["0.9"]["fp"]) == (1, 0)
    best = report["thresholds"]["best"]
    assert best["threshold"] == 0.4 and best["f1"] == 0.8  # 0.4 and 0.5 tie: the lowest
    assert report["auroc"] == 1.0 and (report["correct"], report["scored"]) == (2, 4)


def test_reversed_triples_are_counted_per_relation():
    s = TrustScorer()
    gold = [("founded by", "Microsoft", "Bill Gates"), ("capital of", "Paris", "France")]
    pred = [("founded by", "Bill Gates", "Microsoft"), ("capital of", "Paris", "France"),
            ("capital of", "Berlin", "Germany")]
    s.add(gold, pred, [0.5, 0.9, 0.2], triples=True)
    rev = s.report(triples=True)["reversed"]
    assert (rev["count"], rev["predicted"], rev["share"]) == (1, 3, 0.3333)
    assert rev["per_relation"]["founded by"] == {"reversed": 1, "predicted": 1, "share": 1.0}
    assert rev["per_relation"]["capital of"]["reversed"] == 0


def test_scored_tuples_of_events_give_arguments_their_own_confidence():
    res = {"events": [{"type": "质押", "confidence": 0.9, "trigger": {"text": "质押"},
                       "arguments": [{"role": "质押方", "text": "张三", "confidence": 0.4}]}]}
    pred, conf = scored_tuples("ee", res)
    assert pred == {"triggers": [("质押", "质押")], "arguments": [("质押:质押方", "张三")]}
    assert conf == {"triggers": [0.9], "arguments": [0.4]}
    pred, conf = scored_tuples("ner", {"entities": []})
    assert pred == {"entities": []} and conf == {"entities": []}


def test_distractors_are_deterministic_and_not_in_the_schema():
    assert distractors(["person", "location"], 2) == ["organization", "city"]
    assert distractors(["Organization", "person"], 2) == ["city", "country"]
    with pytest.raises(ValueError):
        distractors(["person"], 1000)


def test_schema_stability():
    gold = [[("person", "Obama"), ("location", "Berlin"), ("person", "Merkel"), ("person", "Bob")]]
    base = [[("person", "Obama"), ("location", "Berlin"), ("person", "Merkel")]]  # Bob never found
    after = [[("person", "Obama"), ("city", "Berlin"), ("location", "Berlin"), ("location", "Merkel")]]
    st = stability(gold, base, after, ["organization", "city"])
    assert (st["entities"], st["stable"], st["to_distractor"], st["lost_or_retyped"]) == (3, 1, 1, 1)
    assert st["stability"] == 0.3333
