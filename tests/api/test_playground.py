"""The playground at ``GET /``: served with a strict CSP and allowed without an API key (only
it), and driven in a real headless Chromium: it renders without console errors, hostile text
and hostile model output stay text, and (engine) a real extraction of the README sentence
shows "Berlin" highlighted as a location; that run's screenshot is docs/playground.png
(``PLAYGROUND_SCREENSHOT=docs/playground.png`` rewrites it). Driven in real time (issue 30):
a run ticks its elapsed time with Run disabled, Cancel aborts it (the service cancels the
engine's work), and each tab keeps its own result."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from headless_chromium import run_chromium
from html_dom import Page, parse_page
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from live_app import serve_app
from waits import wait_until

STATIC = Path(__file__).resolve().parents[2] / "ie_service" / "api" / "static"
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


def browse(chromium: str, tmp_path: Path, url: str, *args: str) -> tuple[Page, list[str]]:
    """Load ``url`` headless and wait for its fetches; the DOM and the console lines."""
    out, console = run_chromium(chromium, tmp_path, url, *args, budget_ms=30000, timeout=300,
                                console_marks=(":CONSOLE", "Uncaught", "Content Security Policy"))
    return parse_page(out), console


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


# ---------------------------------------------------------------- driven in real time (issue 30)
# --virtual-time-budget (browse above) stops the page's clock while a fetch is pending, so a
# run's ticking time and a Cancel during the run need a browser driven in real time: Chromium's
# DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3, replies on fd 4).


class Browser:
    """Headless Chromium, one page, driven over the DevTools protocol; ``problems`` collects
    uncaught exceptions, console errors and log entries (CSP violations among them)."""

    def __init__(self, chromium: str, profile: Path) -> None:
        import fcntl
        import subprocess

        from headless_chromium import QUIET

        to_chrome, self._write = os.pipe()
        self._read_fd, from_chrome = os.pipe()

        def onto_3_and_4() -> None:
            a, b = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium, *QUIET, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=onto_3_and_4, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "HOME": str(profile)})
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.problems = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", page=True)

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium went away: " + self.proc.stderr.read().decode()[-2000:])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, page: bool = False, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if page:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            method_of = reply.get("method")
            favicon = method_of == "Log.entryAdded" and reply["params"]["entry"].get("url", "").endswith("/favicon.ico")
            if method_of == "Runtime.exceptionThrown" or (method_of == "Log.entryAdded" and not favicon) or (
                    method_of == "Runtime.consoleAPICalled" and reply["params"]["type"] in ("error", "warning")):
                self.problems.append(reply["params"])

    def js(self, expression: str):
        """The value of ``expression`` in the page (a promise is awaited)."""
        r = self.send("Runtime.evaluate", page=True, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def wait(self, expression: str, timeout: float = 20.0):
        """Polls ``expression`` until it is truthy; its value."""
        return wait_until(lambda: self.js(expression), timeout, interval=0.05, what=expression)

    def open(self, url: str) -> None:
        self.send("Page.navigate", page=True, url=url)
        self.wait("document.readyState === 'complete' && document.body.dataset.status !== 'loading'")

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def text(self, element_id: str) -> str:
        return self.js(f"document.getElementById({json.dumps(element_id)}).textContent")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(30)
        finally:
            self.proc.stderr.close()
            os.close(self._write)
            os.close(self._read_fd)


@pytest.fixture()
def browser(chromium, tmp_path):
    b = Browser(chromium, tmp_path / "chromium-profile")
    yield b
    b.close()


class HeldEngine(ScriptedEngine):
    """A prompt holding "HOLD" is answered only after 60 s; ``cancelled`` is set when the
    service cancels that generation (the client went away)."""

    def __init__(self, reply) -> None:
        import threading

        super().__init__(reply)
        self.started, self.cancelled, self.finished = threading.Event(), threading.Event(), threading.Event()

    async def generate(self, prompt, options, json_schema=None, **extra):
        import asyncio

        if "HOLD" in prompt:
            self.started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            self.finished.set()
        return await super().generate(prompt, options, json_schema, **extra)


def held_reply(prompt: str, schema: dict | None) -> str:
    if "Instruction?" in prompt or "say hi" in prompt:
        return "hi there"
    return json.dumps({"person": ["Angela Merkel"] if "Merkel" in prompt else [],
                       "location": ["Berlin"] if "Berlin" in prompt else []})


STATE = ("({status: document.body.dataset.status, tab: document.getElementById('results').dataset.task,"
         " shown: document.getElementById('results').dataset.state,"
         " run: document.getElementById('run').disabled, cancel: !document.getElementById('cancel').hidden,"
         " elapsed: document.getElementById('elapsed').hidden ? null"
         " : document.getElementById('elapsed').textContent})")


def test_a_run_ticks_its_time_and_cancel_aborts_it(browser):
    """While a request runs: Run is disabled, the elapsed seconds tick, Cancel shows; Cancel
    aborts the fetch, the service cancels the engine's work, the result area says cancelled."""
    import time

    engine = HeldEngine(held_reply)
    with serve_app(create_app(lambda: engine)) as url:
        browser.open(f"{url}/#" + urlencode({"task": "ner", "schema": "person", "text": "HOLD Angela Merkel"}))
        before = browser.js(STATE)
        assert before["run"] is False and before["cancel"] is False and before["elapsed"] is None
        browser.click("#run")
        assert engine.started.wait(10)
        first = browser.js(STATE)
        assert first["status"] == "running" and first["run"] is True and first["cancel"] is True
        time.sleep(1.6)
        later = browser.js(STATE)
        seconds = [float(re.search(r"(\d+\.\d) s", s["elapsed"]).group(1)) for s in (first, later)]
        assert seconds[1] - seconds[0] >= 1.0, (first, later)  # it ticks
        assert "running" in browser.text("status") and later["run"] is True
        browser.click("#cancel")
        browser.wait("document.body.dataset.status === 'cancelled'", timeout=10)
        assert engine.cancelled.wait(10) and not engine.finished.is_set()  # the server stopped the work
        after = browser.js(STATE)
        assert after["run"] is False and after["cancel"] is False and after["elapsed"] is None
        assert after["shown"] == "cancelled" and "cancelled after" in browser.text("status")
        assert browser.text("error") == "" and browser.text("highlight") == ""
        # the next run works as before
        browser.js("document.getElementById('text').value = 'Angela Merkel'")
        browser.click("#run")
        browser.wait("document.body.dataset.status === 'done'")
        assert browser.text("highlight") == "Angela Merkel" and "done in" in browser.text("status")
    assert browser.problems == []


def test_each_tab_keeps_its_own_result(browser):
    """Switching tabs shows that tab's last result, or nothing: never another tab's (the
    generate tab used to keep showing the previous EE/NER result)."""
    engine = HeldEngine(held_reply)
    with serve_app(create_app(lambda: engine)) as url:
        browser.open(f"{url}/#" + urlencode({"task": "ner", "schema": "person,location", "text": README_SENTENCE}))
        browser.click("#run")
        browser.wait("document.body.dataset.status === 'done'")
        assert "Angela Merkel" in browser.text("entities")
        browser.click('#tabs [data-task="generate"]')
        state = browser.js(STATE)
        assert (state["tab"], state["shown"]) == ("generate", "empty")
        assert browser.text("highlight") == "" and browser.text("status") == "" and browser.text("raw") == ""
        assert browser.js("document.getElementById('entities').hidden")
        browser.js("document.getElementById('text').value = 'say hi'")
        browser.click("#run")
        browser.wait("document.body.dataset.status === 'done'")
        assert browser.text("generated") == "hi there" and browser.text("highlight") == ""
        browser.click('#tabs [data-task="ee"]')
        assert browser.js(STATE)["shown"] == "empty" and browser.js("document.getElementById('generated').hidden")
        assert browser.text("events") == "" and browser.text("stats") == ""
        browser.click('#tabs [data-task="ner"]')
        assert browser.js(STATE)["shown"] == "done" and "Angela Merkel" in browser.text("entities")
        assert browser.text("highlight") == README_SENTENCE
        assert browser.js("document.getElementById('generated').hidden")
        assert "done in" in browser.text("status")
        browser.click('#tabs [data-task="generate"]')
        assert browser.text("generated") == "hi there" and browser.js("document.getElementById('entities').hidden")
        # a run finishing while another tab is shown lands in its own tab only
        browser.click('#tabs [data-task="re"]')
        browser.js("document.getElementById('text').value = 'HOLD Microsoft'")
        browser.click("#run")
        assert engine.started.wait(10)
        browser.click('#tabs [data-task="ner"]')
        state = browser.js(STATE)
        assert state["shown"] == "done" and state["run"] is True and state["elapsed"].startswith("RE running")
        assert "Angela Merkel" in browser.text("entities") and "running" not in browser.text("status")
        browser.click("#cancel")
        browser.wait("document.body.dataset.status === 'cancelled'")
        assert browser.js(STATE)["shown"] == "done" and "Angela Merkel" in browser.text("entities")
        browser.click('#tabs [data-task="re"]')
        assert browser.js(STATE)["shown"] == "cancelled" and "cancelled" in browser.text("status")
    assert browser.problems == []
