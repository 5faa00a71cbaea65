"""Extraction through the real engine (vLLM + embedded SmolLM2) on loopback: constrained
output is valid JSON of the label schema, records are typed and grounded."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from ie_service.extraction.tasks.ee import ee_schema
from ie_service.extraction.tasks.ner import ner_schema
from ie_service.extraction.tasks.re import re_schema

pytestmark = pytest.mark.engine
TEXT_EN = "Barack Obama met Angela Merkel in Berlin on behalf of the United Nations."
TEXT_ZH = "2019年3月，张三将其持有的公司500万股股份质押给中信证券。"


def post(url: str, path: str, body: dict) -> dict:
    r = httpx.post(f"{url}{path}", json=body, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def assert_grounded(records: list[dict], text: str) -> None:
    for span in records:
        if span["grounded"]:
            assert text[span["start"]:span["end"]] == span["text"]
        else:
            assert span["start"] is None and span["end"] is None


def test_ner_constrained_output_is_schema_valid(server_url):
    labels = ["person", "location", "organization"]
    body = post(server_url, "/extract/ner", {"text": TEXT_EN, "schema": labels})
    assert body["stats"]["truncated"] == 0 and body["stats"]["unparseable"] == 0
    jsonschema.validate(json.loads(body["raw_output"][0]), ner_schema(tuple(labels)))
    assert all(e["type"] in labels for e in body["entities"])
    assert_grounded(body["entities"], TEXT_EN)


def test_re_constrained_output_is_schema_valid(server_url):
    relations = ["founded by", "located in"]
    text = "Microsoft was founded by Bill Gates and is located in Redmond."
    body = post(server_url, "/extract/re", {"text": text, "schema": relations,
                                             "parameters": {"max_tokens": 512, "repetition_penalty": 1.1}})
    for raw in body["raw_output"]:
        if body["stats"]["truncated"] == 0:
            jsonschema.validate(json.loads(raw), re_schema(tuple(relations)))
    for t in body["triples"]:
        assert t["relation"] in relations
        assert_grounded([t["head"], t["tail"]], text)


def test_ee_chinese_constrained_output_is_schema_valid(server_url):
    schema = {"质押": ["质押方", "质押物", "质权方"]}
    body = post(server_url, "/extract/ee", {"text": TEXT_ZH, "schema": schema,
                                             "parameters": {"max_tokens": 512, "repetition_penalty": 1.1}})
    assert body["language"] == "zh"
    if body["stats"]["truncated"] == 0:
        jsonschema.validate(json.loads(body["raw_output"][0]), ee_schema((("质押", ("质押方", "质押物", "质权方")),)))
    for event in body["events"]:
        assert event["type"] == "质押"
        assert all(a["role"] in schema["质押"] for a in event["arguments"])
        assert_grounded(event["arguments"] + ([event["trigger"]] if event["trigger"] else []), TEXT_ZH)


def test_batch_and_split_schema_through_engine(server_url):
    labels = ["person", "location", "organization", "date"]
    body = post(server_url, "/extract/ner/batch", {
        "texts": [TEXT_EN, "Paris is in France."], "schema": labels, "labels_per_prompt": 2})
    assert len(body["results"]) == 2
    for res, text in zip(body["results"], [TEXT_EN, "Paris is in France."]):
        assert res["stats"]["prompts"] == 2
        for raw, group in zip(res["raw_output"], [labels[:2], labels[2:]]):
            jsonschema.validate(json.loads(raw), ner_schema(tuple(group)))
        assert_grounded(res["entities"], text)


def test_unconstrained_never_fails(server_url):
    body = post(server_url, "/extract/ner", {"text": TEXT_EN, "schema": ["person"], "constrained": False,
                                              "parameters": {"max_tokens": 64}})
    assert isinstance(body["entities"], list) and len(body["raw_output"]) == 1


def test_bad_extract_request_is_4xx_on_real_server(server_url):
    r = httpx.post(f"{server_url}/extract/re", json={"text": "x", "schema": {}}, timeout=30)
    assert r.status_code == 422 and "at least one" in r.json()["error"]


README_TEXT = "Barack Obama met Angela Merkel in Berlin."


def test_default_model_extracts_the_readme_example(server_url):
    """The shipped IE adapter makes the default model extract for real (the raw base answered
    empty lists): typed entities with exact character offsets."""
    body = post(server_url, "/extract/ner", {"text": README_TEXT, "schema": ["person", "location"]})
    found = {(e["text"], e["type"], e["start"], e["end"]) for e in body["entities"]}
    assert ("Berlin", "location", 34, 40) in found
    assert found & {("Angela Merkel", "person", 17, 30), ("Barack Obama", "person", 0, 12)}
    assert_grounded(body["entities"], README_TEXT)


@pytest.mark.xfail(strict=False, reason="depends on the dtype the host runs: adapter v2 finds him in float32 "
                                        "(CPUs without native bf16, seen), not in bf16 (person: [Angela Merkel])")
def test_default_model_finds_barack_obama_in_the_readme_example(server_url):
    body = post(server_url, "/extract/ner", {"text": README_TEXT, "schema": ["person", "location"]})
    assert ("Barack Obama", "person", 0, 12) in {(e["text"], e["type"], e["start"], e["end"])
                                                 for e in body["entities"]}


def test_default_model_extracts_relations_and_chinese_entities(server_url):
    re_body = post(server_url, "/extract/re", {"text": "Marie Curie was married to Pierre Curie.",
                                               "schema": ["spouse", "mother"]})
    # the pair is found and grounded (v2 labels it "mother", not "spouse": see the model card)
    assert ("Marie Curie", "Pierre Curie") in {(t["head"]["text"], t["tail"]["text"]) for t in re_body["triples"]}
    assert all(t["head"]["grounded"] and t["tail"]["grounded"] for t in re_body["triples"])
    zh = post(server_url, "/extract/ner", {"text": "李明在北京的清华大学工作。", "schema": ["PER", "LOC", "ORG"]})
    assert ("北京", "LOC") in {(e["text"], e["type"]) for e in zh["entities"]}


def _counter(metrics: str, name: str, task: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith(f'{name}_total{{task="{task}"}}'))
    return float(line.split()[-1])


def test_shared_prompt_is_computed_once(server_url):
    """Two texts with the same labels share everything before the text (chat template,
    instruction, schema): the second prompt takes that part from the prefix cache (KV blocks
    of 32 tokens on the CPU), and /metrics counts it (issue 28)."""
    labels = ["person", "location", "organization", "date"]
    first = post(server_url, "/extract/ner", {"text": "Ada Lovelace was born in London.", "schema": labels})
    second = post(server_url, "/extract/ner", {"text": "Alan Turing worked in Manchester.", "schema": labels})
    shared = second["stats"]["cached_prompt_tokens"]
    assert 32 <= shared < second["stats"]["prompt_tokens"], second["stats"]
    assert shared % 16 == 0  # whole blocks only (32 tokens on the CPU, 16 on a GPU)
    assert first["stats"]["engine_seconds"] > 0
    metrics = httpx.get(f"{server_url}/metrics").text
    hits, queries = _counter(metrics, "ie_prefix_cache_hits", "ner"), _counter(metrics, "ie_prefix_cache_queries", "ner")
    assert shared <= hits <= queries and queries >= first["stats"]["prompt_tokens"] + second["stats"]["prompt_tokens"]


def test_typed_relations_keep_their_ends(server_url):
    """The playground's typed RE example (issue 29): pairs keyed by the declared types, so the
    organization is the head of "founded by" (names alone: the model answers it reversed)."""
    schema = [{"relation": "founded by", "head_type": "organization", "tail_type": "person"},
              {"relation": "headquartered in", "head_type": "organization", "tail_type": "location"}]
    text = "Microsoft was founded by Bill Gates. Microsoft is headquartered in Redmond."
    body = post(server_url, "/extract/re", {"text": text, "schema": schema})
    (raw,) = body["raw_output"]
    pairs = [p for pairs in json.loads(raw).values() for p in pairs]
    assert pairs and all(set(p) in ({"organization", "person"}, {"organization", "location"}) for p in pairs), raw
    founded = [(t["head"]["text"], t["tail"]["text"]) for t in body["triples"] if t["relation"] == "founded by"]
    assert founded == [("Microsoft", "Bill Gates")], body["triples"]
    assert all(t["head"]["type"] == "organization" for t in body["triples"])


def _confidences(task: str, body: dict) -> list[float]:
    """Every record's confidence, and its parts' (triple ends, trigger, arguments)."""
    out = []
    for r in body[{"ner": "entities", "re": "triples", "ee": "events"}[task]]:
        out.append(r["confidence"])
        out += [r[k]["confidence"] for k in ("head", "tail", "trigger") if r.get(k)]
        out += [a["confidence"] for a in r.get("arguments", [])]
    return out


def test_every_record_of_every_task_has_a_confidence(server_url):
    """Issue 29 #3: a confidence in [0, 1] on every record (constrained and free text), from
    the engine's token log-probabilities; ``min_confidence`` drops the records below it."""
    asks = [("ner", {"text": README_TEXT, "schema": ["person", "location"]}),
            ("ner", {"text": README_TEXT, "schema": ["person", "location"], "constrained": False,
                     "parameters": {"max_tokens": 64}}),
            ("re", {"text": "Microsoft was founded by Bill Gates.", "schema": ["founded by"]}),
            ("ee", {"text": TEXT_ZH, "schema": {"质押": ["质押方", "质押物", "质权方"]}})]
    seen = []
    for task, req in asks:
        body = post(server_url, f"/extract/{task}", req)
        conf = _confidences(task, body)
        assert all(isinstance(c, float) and 0.0 <= c <= 1.0 for c in conf), (task, body)
        if req.get("constrained", True):
            assert conf, (task, body)  # the adapter finds something in each of these
        seen += conf
    assert min(seen) < 0.999  # the model's probabilities, not a constant
    body = post(server_url, "/extract/ner", asks[0][1])
    scores = sorted(e["confidence"] for e in body["entities"])
    threshold = (scores[0] + scores[-1]) / 2
    kept = post(server_url, "/extract/ner", {**asks[0][1], "min_confidence": threshold})["entities"]
    assert all(e["confidence"] >= threshold for e in kept)
    if scores[-1] - scores[0] > 0.05:  # one below and one above the midpoint, clearly
        assert 0 < len(kept) < len(body["entities"]), (scores, kept)
