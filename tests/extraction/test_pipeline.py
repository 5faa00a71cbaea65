"""Extraction pipeline and routes with a scripted engine: prompts, schema split, chunking
and offset remapping, merging, truncation, errors. The real engine: test_constrained_extraction.py."""

import json

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.extraction.extractor import detect_language
from ie_service.engine.generation import Generation


def input_of(prompt: str) -> str:
    return json.loads(prompt)["input"]


def schema_labels(prompt: str):
    return json.loads(prompt)["schema"]


def answer_persons(prompt, schema):
    """Name every capitalised word as a person, under whichever labels were asked."""
    labels = schema_labels(prompt)
    words = [w.strip(".,") for w in input_of(prompt).split() if w[:1].isupper()]
    return json.dumps({label: (words if label == "person" else []) for label in labels})


@pytest.fixture()
def make_client():
    clients = []

    def make(reply):
        engine = ScriptedEngine(reply)
        client = TestClient(create_app(lambda: engine))
        client.__enter__()
        clients.append(client)
        return client, engine

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_ner_constrained_sends_schema_and_grounds(make_client):
    client, engine = make_client(answer_persons)
    r = client.post("/extract/ner", json={"text": "Yesterday Obama met Merkel.", "schema": ["person", "location"]})
    assert r.status_code == 200, r.text
    ents = r.json()["entities"]
    assert [(e["text"], e["type"], e["start"], e["end"]) for e in ents] == [
        ("Yesterday", "person", 0, 9), ("Obama", "person", 10, 15), ("Merkel", "person", 20, 26)]
    # grounded by default: a grammar of the labels whose spans are runs of the text
    assert engine.calls[0][2] is None
    grammar = engine.grammars[0]
    assert '"\\"person\\""' in grammar and '"\\"location\\""' in grammar and '"Obama" g' in grammar
    assert engine.calls[0][1].temperature == 0.0


def test_ungrounded_request_sends_the_json_schema(make_client):
    client, engine = make_client(answer_persons)
    r = client.post("/extract/ner", json={"text": "Yesterday Obama met Merkel.", "schema": ["person", "location"],
                                          "grounded": False})
    assert r.status_code == 200, r.text
    schema = engine.calls[0][2]
    assert set(schema["required"]) == {"person", "location"} and schema["additionalProperties"] is False
    assert engine.grammars == [None]


def test_large_schema_is_split_and_merged(make_client):
    client, engine = make_client(answer_persons)
    labels = ["person"] + [f"type{i}" for i in range(8)]
    r = client.post("/extract/ner", json={"text": "Obama spoke.", "schema": labels, "labels_per_prompt": 3})
    assert r.status_code == 200
    groups = [schema_labels(p) for p, _, _ in engine.calls]
    assert sorted(map(len, groups)) == [3, 3, 3] and sorted(sum(groups, [])) == sorted(labels)
    assert r.json()["stats"]["prompts"] == 3
    assert [e["text"] for e in r.json()["entities"]] == ["Obama"]


def test_long_text_is_chunked_offsets_remapped_and_deduplicated(make_client):
    client, engine = make_client(answer_persons)
    text = " ".join(f"Then Alice{i} waved to Bob." for i in range(120))
    r = client.post("/extract/ner", json={"text": text, "schema": ["person"],
                                          "parameters": {"max_tokens": 64}})
    body = r.json()
    assert body["stats"]["chunks"] > 1 and len(engine.calls) == body["stats"]["chunks"]
    ents = body["entities"]
    for e in ents:
        assert text[e["start"]:e["end"]] == e["text"]
    names = [e["text"] for e in ents]
    assert len(names) == len(set((e["start"], e["end"]) for e in ents))
    assert {f"Alice{i}" for i in range(120)} <= set(names)


def test_truncated_output_is_discarded_with_warning(make_client):
    client, engine = make_client(answer_persons)

    async def truncated(prompt, options, schema=None, grammar=None, **_):
        return Generation('{"person": ["Obama"', 3, options.max_tokens, "length")

    engine.generate = truncated
    body = client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"]}).json()
    assert body["entities"] == [] and body["stats"]["truncated"] == 1
    assert "max_tokens" in body["warnings"][0]


def test_unconstrained_knowlm_template_parses_free_text(make_client):
    client, engine = make_client(lambda p, s: "(Microsoft, founded by, Bill Gates)\n(Microsoft, owns, GitHub)")
    r = client.post("/extract/re", json={
        "text": "Microsoft was founded by Bill Gates.", "constrained": False, "template": "re-en-knowlm",
        "schema": [{"relation": "founded by", "head_type": "organization", "tail_type": "person"}]})
    body = r.json()
    assert r.status_code == 200, r.text
    t = body["triples"][0]
    assert (t["head"]["text"], t["head"]["type"], t["relation"], t["tail"]["text"], t["tail"]["type"]) == (
        "Microsoft", "organization", "founded by", "Bill Gates", "person")
    assert t["tail"]["start"] == 25 and len(body["triples"]) == 1
    assert any("owns" in w for w in body["warnings"])
    prompt, _, schema = engine.calls[0]
    assert schema is None and "founded by" in prompt and prompt.endswith("Microsoft was founded by Bill Gates.")


def test_ee_and_drop_ungrounded(make_client):
    answer = {"质押": [{"trigger": "质押", "arguments": {"质押方": "张三", "质押物": "黄金"}}]}
    client, _ = make_client(lambda p, s: json.dumps(answer, ensure_ascii=False))
    req = {"text": "张三将股份质押给银行。", "schema": {"质押": ["质押方", "质押物"]}}
    body = client.post("/extract/ee", json=req).json()
    assert body["language"] == "zh"
    event = body["events"][0]
    assert event["trigger"] == {"text": "质押", "start": 5, "end": 7, "grounded": True, "confidence": 1.0}
    assert [(a["role"], a["grounded"]) for a in event["arguments"]] == [("质押方", True), ("质押物", False)]
    assert body["stats"]["ungrounded"] == 1
    dropped = client.post("/extract/ee", json={**req, "drop_ungrounded": True}).json()
    assert [a["role"] for a in dropped["events"][0]["arguments"]] == ["质押方"]


def test_batch_form(make_client):
    client, _ = make_client(answer_persons)
    r = client.post("/extract/ner/batch", json={"texts": ["Obama spoke.", "then Merkel left."], "schema": ["person"]})
    results = r.json()["results"]
    assert [[e["text"] for e in res["entities"]] for res in results] == [["Obama"], ["Merkel"]]


def test_unparseable_output_is_counted(make_client):
    client, _ = make_client(lambda p, s: "I cannot help with that.")
    body = client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"],
                                             "constrained": False}).json()
    assert body["stats"]["unparseable"] == 1 and body["entities"] == []


@pytest.mark.parametrize(
    "path,body,needle",
    [
        ("/extract/ner", {"text": "x"}, "schema"),
        ("/extract/ner", {"text": "", "schema": ["a"]}, "text"),
        ("/extract/ner", {"text": "x", "schema": []}, "at least one"),
        ("/extract/ner", {"text": "x", "schema": ["a", "A"]}, "duplicate"),
        ("/extract/ner", {"text": "x", "schema": [" "]}, "non-empty"),
        ("/extract/ner", {"text": "x", "schema": ["a"], "language": "fr"}, "language"),
        ("/extract/ner", {"text": "x", "schema": ["a"], "template": "nope"}, "unknown template"),
        ("/extract/ner", {"text": "x", "schema": ["a"], "template": "re-en-schema"}, "for task 're'"),
        ("/extract/ner", {"text": "x", "schema": ["a"], "template": "ner-en-knowlm"}, "constrained"),
        ("/extract/ee", {"text": "x", "schema": {"a": "not a list"}}, "schema"),
        ("/extract/re", {"text": "x", "schema": [{"relation": ""}]}, "non-empty"),
        ("/extract/ner/batch", {"texts": [], "schema": ["a"]}, "texts"),
        ("/extract/ner", {"text": "x", "schema": ["a"], "parameters": {"max_tokens": 500}}, "no room"),
    ],
)
def test_bad_requests_are_4xx_with_message(make_client, path, body, needle):
    client, _ = make_client(answer_persons)
    r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert needle in r.json()["error"]


def test_detect_language():
    assert detect_language("张三质押了股份 ABC") == "zh"
    assert detect_language("Obama met Merkel 一") == "en"
    assert detect_language("1234") == "en"


def test_examples_show_only_the_prompts_labels(make_client):
    client, engine = make_client(answer_persons)
    example = {"input": "Obama in Paris.", "output": {"person": ["Obama"], "location": ["Paris"]}}
    client.post("/extract/ner", json={"text": "Merkel spoke.", "schema": ["person", "location"],
                                      "labels_per_prompt": 1, "examples": [example]})
    shown = sorted((json.loads(p)["schema"], json.loads(p)["example"][0]["output"]) for p, _, _ in engine.calls)
    assert shown == [(["location"], {"location": ["Paris"]}), (["person"], {"person": ["Obama"]})]


def test_relation_with_the_same_head_and_tail_is_dropped_and_counted(make_client):
    answer = {"founded by": [{"subject": "Apple", "object": "Apple"},
                             {"subject": "Apple", "object": "Steve Jobs"}]}
    client, _ = make_client(lambda p, s: json.dumps(answer))
    r = client.post("/extract/re", json={"text": "Apple was founded by Steve Jobs.", "schema": ["founded by"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(t["head"]["text"], t["tail"]["text"]) for t in body["triples"]] == [("Apple", "Steve Jobs")]
    assert body["stats"]["self_relations"] == 1 and any("same span" in w for w in body["warnings"])
