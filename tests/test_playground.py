"""The playground at ``GET /``: served with a strict CSP and allowed without an API key (only
it), and driven in a real headless Chromium: it renders without console errors, hostile text
and hostile model output stay text, and (engine) a real extraction of the README sentence
shows "Berlin" highlighted as a location; that run's screenshot is docs/playground.png
(``PLAYGROUND_SCREENSHOT=docs/playground.png`` rewrites it)."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from headless_chromium import run_chromium
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from live_app import serve_app

STATIC = Path(__file__).resolve().parent.parent / "ie_service" / "api" / "static"
README_SENTENCE = "Barack Obama met Angela Merkel in Berlin."
PWN = "document.body.setAttribute('data-pwned','1')"
HOSTILE = [f"<script>{PWN}</script>", "</textarea>", f'"><img src=x onerror="{PWN}">', "\u200fRTL\u202eevil"]


def test_page_is_served_with_a_strict_csp_and_without_a_key():
    with TestClient(create_app(lambda: ScriptedEngine(), settings=ServiceSettings(api_keys=["k"]))) as c:
        for path in ("/", "/playground.js", "/playground.css"):
            r = c.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
        for path in ("/templates", "/v1/models", "/health", "/metrics", "/docs"):
            assert c.get(path).status_code == 401, path
        assert c.post("/", json={}).status_code == 401  # GET only
        assert [t["ref"] for t in c.get("/templates", headers={"x-api-key": "k"}).json()["templates"]
                if t["task"] == "ner"] == ["ner-en-knowlm@1", "ner-en-schema@1", "ner-zh-knowlm@1", "ner-zh-schema@1"]


def test_page_is_self_contained_and_builds_dom_from_text_only():
    html = (STATIC / "playground.html").read_text()
    js = (STATIC / "playground.js").read_text()
    assert not re.search(r"https?://", html + js)  # no CDN, nothing remote
    assert "<style" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline code
    assert not re.search(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval)\b", js)


class Dom(HTMLParser):
    """Text per element id, the highlighted marks, <body>'s attributes and every tag seen."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text_of: dict[str, str] = {}
        self.marks: list[dict] = []
        self.body: dict = {}
        self.tags: list[str] = []
        self._open: list[tuple[str, str | None]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = a
        if tag == "mark":
            self.marks.append({**a, "text": ""})
        if tag not in ("br", "img", "input", "meta", "link", "hr", "option"):
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        while any(t == tag for t, _ in self._open):
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for tag, i in self._open:
            if i:
                self.text_of[i] = self.text_of.get(i, "") + data
        if self._open and self._open[-1][0] == "mark":
            self.marks[-1]["text"] += data


def browse(chromium: str, tmp_path: Path, url: str, *args: str) -> tuple[Dom, list[str]]:
    """Load ``url`` headless and wait for its fetches; the DOM and the console lines."""
    out, console = run_chromium(chromium, tmp_path, url, *args, budget_ms=30000, timeout=300,
                                console_marks=(":CONSOLE", "Uncaught", "Content Security Policy"))
    return Dom(out), console


def run_url(base: str, **fields: str) -> str:
    return f"{base}/#" + urlencode({**fields, "run": "1"})


@pytest.fixture(scope="module")
def scripted_url():
    """The app with a scripted engine (it quotes every hostile string as a person) on loopback."""
    def reply(prompt: str, schema: dict | None) -> str:
        return json.dumps({"person": [h for h in HOSTILE if h in prompt or json.dumps(h)[1:-1] in prompt],
                           "location": ["Berlin"] if "Berlin" in prompt else []})

    with serve_app(create_app(lambda: ScriptedEngine(reply))) as url:
        yield url


def test_hostile_text_and_output_stay_text(chromium, tmp_path, scripted_url):
    text = " ".join(HOSTILE) + " in Berlin."
    dom, console = browse(chromium, tmp_path, run_url(scripted_url, task="ner", schema="person,location", text=text),
                          "--dump-dom")
    assert console == [], console
    assert dom.body.get("data-status") == "done", dom.text_of.get("error")
    assert "data-pwned" not in dom.body and "img" not in dom.tags  # nothing ran, no element was made
    assert dom.text_of["highlight"] == text  # the text exactly, marks included
    persons = [m["text"] for m in dom.marks if m["data-type"] == "person"]
    assert persons == HOSTILE
    assert {m["text"] for m in dom.marks if m["data-type"] == "location"} == {"Berlin"}
    assert "[" in next(m for m in dom.marks if m["text"] == HOSTILE[0])["title"]  # hover: offsets, grounded


def test_bad_schema_is_reported_on_the_page(chromium, tmp_path, scripted_url):
    dom, console = browse(chromium, tmp_path, run_url(scripted_url, task="ee", schema="not json", text="x"),
                          "--dump-dom")
    assert dom.body.get("data-status") == "error" and "EE schema is JSON" in dom.text_of["error"]
    assert console == []


@pytest.mark.engine
def test_real_extraction_highlights_berlin_as_a_location(chromium, tmp_path, server_url):
    url = run_url(server_url, task="ner", schema="person,location", text=README_SENTENCE, language="en")
    dom, console = browse(chromium, tmp_path, url, "--dump-dom")
    assert console == [], console
    assert dom.body.get("data-status") == "done", dom.text_of.get("error")
    assert dom.text_of["highlight"] == README_SENTENCE
    berlin = next(m for m in dom.marks if m["text"] == "Berlin")
    assert (berlin["data-type"], berlin["data-start"], berlin["data-end"]) == ("location", "34", "40")
    assert "location" in dom.text_of["legend"] and "template ner-en-schema@1" in dom.text_of["stats"]
    assert dom.text_of["model"]  # /v1/models answered
    shot = tmp_path / "playground.png"
    _, console = browse(chromium, tmp_path, url, f"--screenshot={shot}", "--window-size=1280,720",
                        "--hide-scrollbars")
    assert console == [] and shot.stat().st_size > 20_000
    if os.environ.get("PLAYGROUND_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["PLAYGROUND_SCREENSHOT"])


def test_confidence_is_shown_and_the_slider_filters(chromium, tmp_path):
    """Each record shows its confidence; min_confidence (the slider, preset by the URL)
    hides the records below it without a new request (issue 29)."""
    engine = ScriptedEngine(lambda p, s: json.dumps({"person": ["Angela Merkel"], "location": ["Berlin"]}))
    engine.token_logprob = lambda text, i: -2.0 if 0 <= i - text.find("Berlin") < 6 else 0.0
    with serve_app(create_app(lambda: engine)) as url:
        dom, console = browse(chromium, tmp_path, run_url(url, task="ner", schema="person,location",
                                                          text=README_SENTENCE), "--dump-dom")
        assert console == [] and dom.body.get("data-status") == "done", dom.text_of.get("error")
        assert "Angela Merkel" in dom.text_of["entities"] and "1.00" in dom.text_of["entities"]
        berlin = next(m for m in dom.marks if m["text"] == "Berlin")
        assert float(berlin["data-confidence"]) < 0.5 and "confidence" in berlin["title"]
        dom, console = browse(chromium, tmp_path, run_url(url, task="ner", schema="person,location",
                                                          text=README_SENTENCE, min_confidence="0.5"), "--dump-dom")
        assert console == [] and dom.body.get("data-status") == "done"
        assert [m["text"] for m in dom.marks] == ["Angela Merkel"]  # Berlin is below 0.5
        assert "Berlin" not in dom.text_of["entities"] and "1 below" in dom.text_of["hidden-count"]
        assert dom.text_of["highlight"] == README_SENTENCE  # the text stays whole
