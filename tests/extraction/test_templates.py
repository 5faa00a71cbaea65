"""Templates are checked when they load (keys, task, placeholders), so a bad user template
stops the service at start instead of answering 500; versions pin prompts."""

import json

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.extraction.templates import TemplateError, TemplateRegistry

KNOWLM = {"name": "mine", "task": "ner", "language": "en", "style": "knowlm",
          "instruction": "Find entities of the types {labels}."}


def folder_with(tmp_path, **changes):
    (tmp_path / "mine.json").write_text(json.dumps({**KNOWLM, **changes}))
    return tmp_path


@pytest.mark.parametrize("changes,needle", [
    ({"instruction": 'Answer as {"type": "entity"} for {labels}.'}, "placeholder"),
    ({"instruction": "Types: {labels}. Answer {like this."}, "'{{'"),
    ({"instruction": "Types: {labels}} here."}, "'}}'"),
    ({"instruction": "Types: {labels!r}."}, "conversion"),
    ({"instruction": "Types: {0}."}, "placeholder"),
    ({"task": "nope"}, "unknown task 'nope'"),
    ({"stlye": "knowlm"}, "stlye"),
    ({"name": "a@b"}, "name"),
    ({"version": 0}, "version"),
])
def test_bad_template_is_refused_at_load(tmp_path, changes, needle):
    with pytest.raises(TemplateError, match="bad template file") as err:
        TemplateRegistry([folder_with(tmp_path, **changes)])
    assert needle in str(err.value)


def test_bad_user_template_stops_the_app_before_any_request(tmp_path, monkeypatch):
    folder = folder_with(tmp_path, instruction='Answer {"entity": type} for {labels}.')
    with pytest.raises(TemplateError):
        create_app(lambda: ScriptedEngine(), templates=TemplateRegistry.default([folder]))


def test_escaped_braces_render_literally(tmp_path):
    registry = TemplateRegistry([folder_with(tmp_path, instruction='Types {labels}; answer {{"t": "e"}}.')])
    instruction, text = registry.templates["mine"].render("Obama.", None, "person, place")
    assert instruction == 'Types person, place; answer {"t": "e"}.' and text == "Obama."


def test_shipped_templates_all_load():
    registry = TemplateRegistry.default()
    assert {"ner-en-schema", "ee-zh-knowlm", "re-zh-knowlm"} <= set(registry.templates)
    assert all(t.version == 1 for t in registry.templates.values())


def test_version_is_reported_and_can_be_pinned(tmp_path):
    engine = ScriptedEngine(lambda p, s: '{"person": []}')
    templates = TemplateRegistry.default([folder_with(tmp_path, version=3)])
    with TestClient(create_app(lambda: engine, templates=templates)) as client:
        ok = client.post("/extract/ner", json={"text": "x", "schema": ["person"]})
        assert ok.json()["template"] == "ner-en-schema@1"
        pinned = client.post("/extract/ner", json={"text": "x", "schema": ["person"], "constrained": False,
                                                   "template": "mine@3"})
        assert pinned.status_code == 200 and pinned.json()["template"] == "mine@3"
        moved = client.post("/extract/ner", json={"text": "x", "schema": ["person"], "constrained": False,
                                                  "template": "mine@2"})
        assert moved.status_code == 422 and "at version 3, not 2" in moved.json()["error"]
