"""A third-party task, installed as a package with an ``ie_service.tasks`` entry point, gets
its route, wire models, metrics, CLI choice, templates and evaluation with no core edit."""

import json
import sys
import textwrap

import httpx
import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.cli import build_parser
from ie_service.evaluation import datasets, runner
from ie_service.extraction.tasks import TASKS, TaskError

TOY = '''
"""Keywords of the requested kinds: a toy task, everything in one module."""

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from ie_service.extraction.constraints import SPAN, list_of, strict_object
from ie_service.extraction.lenient_json import find_json
from ie_service.extraction.parsing import LabelSet, Parsed, known, span_values
from ie_service.extraction.records import Span
from ie_service.extraction.schema import check_nonempty, clean_name
from ie_service.extraction.tasks import Task
from ie_service.extraction.tasks.base import bounded, gold_span, span_key


class Kind(BaseModel):
    name: str


class Keyword(Span):
    kind: str


@lru_cache
def _schema(kinds):
    return strict_object({k: list_of(SPAN) for k in kinds})


class Keywords(Task[Kind]):
    name = "keywords"
    labels_per_prompt = 2
    records_field = "keywords"
    record = Keyword
    wire_schema = list[str]
    summary = "Keywords of the requested kinds."
    templates_dir = Path(__file__).parent / "templates"

    def labels(self, raw):
        check_nonempty(raw, "kind")
        return [Kind(name=clean_name(k, "kind")) for k in raw]

    def prompt_schema(self, group):
        return [k.name for k in group]

    def json_schema(self, group):
        return _schema(tuple(k.name for k in group))

    def parse(self, text, group):
        out, labels, data = Parsed(), LabelSet(k.name for k in group), find_json(text)
        if not isinstance(data, dict):
            return Parsed(ok=not text.strip())
        for key, value in data.items():
            values = span_values(value)
            if (kind := known(out, labels, key, values)) is not None:
                out.records += [(v, kind) for v in values]
        return out

    def build(self, records, group, ground):
        return [ground.span(text, Keyword, kind=kind) for text, kind in records]

    def key(self, record):
        return (record.kind, *span_key(record))

    def grounded_only(self, record):
        return record if record.grounded else None

    def gold_schema(self, docs):
        return sorted({k for d in docs for _, k in d.extra.get("keywords", [])})

    def gold_label_names(self, doc):
        return sorted({k for _, k in doc.extra.get("keywords", [])})

    def gold_tuples(self, doc):
        return {"keywords": [(k, t) for t, k in doc.extra.get("keywords", [])]}

    def predicted_tuples(self, response):
        return {"keywords": [(k["kind"], k["text"]) for k in response["keywords"]]}

    def gold_answer(self, doc, group):
        pairs = doc.extra.get("keywords", [])
        return {g.name: bounded([gold_span(doc.text, t) for t, k in pairs if k == g.name]) for g in group}
'''

TEMPLATE = {"name": "keywords-en-schema", "task": "keywords", "language": "en", "style": "schema",
            "instruction": "Extract keywords of the given kinds as JSON."}


def _install(root, module: str, name: str = "toy-ie-task", entry: str = "keywords = toy_ie_task:Keywords"):
    """A package and its dist-info (what pip would write) in ``root``."""
    pkg = root / "toy_ie_task"
    (pkg / "templates").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(module))
    (pkg / "templates" / "keywords-en-schema.json").write_text(json.dumps(TEMPLATE))
    info = root / "toy_ie_task-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ie_service.tasks]\n{entry}\n")


@pytest.fixture()
def plugged(tmp_path, monkeypatch):
    """The toy task installed on sys.path; the registry reloaded around the test."""
    def install(module: str = TOY, **kwargs) -> None:
        _install(tmp_path, module, **kwargs)
        monkeypatch.syspath_prepend(str(tmp_path))
        TASKS.reload()

    yield install
    monkeypatch.undo()
    sys.modules.pop("toy_ie_task", None)
    TASKS.reload()


def answer_capitalised(prompt: str, schema) -> str:
    """Every capitalised word is a keyword of the first kind asked for."""
    body = json.loads(prompt)
    words = [w.strip(".,") for w in body["input"].split() if w[:1].isupper()]
    return json.dumps({k: (words if i == 0 else []) for i, k in enumerate(body["schema"])})


def test_plugin_task_gets_routes_metrics_and_openapi(plugged):
    plugged()
    assert list(TASKS) == ["ner", "re", "ee", "keywords"]
    engine = ScriptedEngine(answer_capitalised)
    with TestClient(create_app(lambda: engine)) as client:
        r = client.post("/extract/keywords", json={"text": "We met Alice in Paris.", "schema": ["name", "thing"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [(k["text"], k["kind"], k["start"]) for k in body["keywords"]] == [
            ("We", "name", 0), ("Alice", "name", 7), ("Paris", "name", 16)]
        assert body["template"] == "keywords-en-schema@1"
        assert set(engine.calls[0][2]["required"]) == {"name", "thing"}
        batch = client.post("/extract/keywords/batch", json={"texts": ["Hi Bob.", "no caps"], "schema": ["x"]})
        assert [len(res["keywords"]) for res in batch.json()["results"]] == [2, 0]
        bad = client.post("/extract/keywords", json={"text": "x", "schema": []})
        assert bad.status_code == 422 and "at least one kind" in bad.json()["error"]
        spec = client.get("/openapi.json").json()
        assert {"KeywordsRequest", "KeywordsResponse", "KeywordsBatchResponse"} <= set(spec["components"]["schemas"])
        metrics = client.get("/metrics").text
        assert 'ie_requests_total{path="/extract/keywords",status="200"}' in metrics
        assert 'ie_output_tokens_total{task="keywords"}' in metrics


def test_plugin_task_is_a_cli_choice(plugged):
    plugged()
    args = build_parser().parse_args(["eval", "--dataset", "gold.jsonl", "--task", "keywords"])
    assert args.task == "keywords"


def test_plugin_task_is_evaluated(plugged, tmp_path):
    plugged()
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(d) for d in [
        {"id": "1", "text": "Alice met Bob.", "keywords": [["Alice", "name"], ["Bob", "name"]]},
        {"id": "2", "text": "See Paris.", "keywords": [["Paris", "place"]]},
    ]))
    docs = datasets.load(str(gold))
    assert datasets.labels_of(docs, "keywords") == ["name", "place"]
    app = create_app(lambda: ScriptedEngine(answer_capitalised))
    with TestClient(app):  # runs the lifespan; the runner reaches the app in process
        report = runner.evaluate("http://toy", "keywords", docs, {"schema": ["name", "place"]},
                                 tmp_path / "pred.jsonl", transport=httpx.ASGITransport(app=app))
    micro = report["scores"]["keywords"]["micro"]
    # doc 1: Alice, Bob right; doc 2: "See" and "Paris" both said to be names
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 2, 1)
    assert report["templates"] == ["keywords-en-schema@1"] and report["totals"]["errors"] == 0


def test_incomplete_plugin_fails_when_loaded(plugged):
    plugged(TOY.replace("    def gold_answer(self, doc, group):", "    def _not_gold_answer(self, doc, group):"))
    with pytest.raises(TaskError, match="incomplete.*gold_answer"):
        list(TASKS)


def test_plugin_entry_point_must_carry_the_task_name(plugged):
    plugged(entry="kw = toy_ie_task:Keywords")
    with pytest.raises(TaskError, match="names must match"):
        list(TASKS)
