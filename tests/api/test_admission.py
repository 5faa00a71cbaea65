"""Issue 20 (server side), fast: admission before work, all-or-none prompts, chunk budgets,
strict wire types, schema keywords and depth, duplicate labels, grammar-compile isolation,
the engine supervisor. The scripted engine of tests/fakes.py stands in for vLLM."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine, slowed
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings
from ie_service.engine.supervisor import EngineSupervisor
from ie_service.engine.generation import Generation
from ie_service.extraction import chunking
from ie_service.extraction.chunking import chunk_text
from waits import wait_until

NER = "/extract/ner"


def client_for(engine, settings: ServiceSettings | None = None, **supervisor_kw) -> TestClient:
    def supervised(factory):
        return EngineSupervisor(factory, **supervisor_kw)

    return TestClient(create_app(lambda: engine, settings=settings, supervisor=supervised))


# --- chunking: linear cost, budgets right for dense characters ------------------------------


def test_chunking_cost_is_linear_in_the_text():
    text = "x\n" * 55000  # took about a minute on main: count() on growing merged strings
    tokenized = 0

    def count(s: str) -> int:
        nonlocal tokenized
        tokenized += len(s)
        return len(s)

    chunks = chunk_text(text, 1500, count)
    assert tokenized <= 6 * len(text), tokenized
    assert all(len(c.text) <= 1500 for c in chunks)
    assert len(chunks) <= 1.25 * len(text) / 1500 + 2


def test_chunks_fit_when_some_characters_are_several_tokens():
    def count(s: str) -> int:  # "a" is a quarter token, an emoji four
        return len(s.replace("😀", "")) // 4 + 4 * s.count("😀")

    text = "a" * 60000 + "😀" * 6000
    chunks = chunk_text(text, 1000, count)
    assert max(count(c.text) for c in chunks) <= 1000
    assert "".join(c.text for c in chunks) == text
    assert all(text[c.offset:c.end] == c.text for c in chunks)


# --- admission before work ------------------------------------------------------------------


def test_prompt_cap_refuses_before_any_chunking(monkeypatch):
    calls = []
    monkeypatch.setattr("ie_service.extraction.extractor.chunk_text",
                        lambda *a, **k: calls.append(1) or chunking.chunk_text(*a, **k))
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post(NER, json={"text": "x\n" * 50000, "schema": ["person"]})
    assert r.status_code == 413, r.text
    assert "at most 64" in r.json()["error"]
    assert calls == [] and engine.calls == []


class SlowCounting(ScriptedEngine):
    """Tokenizing takes 1 s of blocking work per call (a long text's)."""

    def count_tokens(self, text: str) -> int:
        if len(text) > 1000:
            time.sleep(1.0)
        return super().count_tokens(text)


def test_health_answers_while_a_long_text_is_tokenized():
    async def main() -> tuple[float, int]:
        app = create_app(SlowCounting, supervisor=lambda f: EngineSupervisor(f, probe_every_s=60))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                heavy = asyncio.create_task(client.post(NER, json={"text": "word " * 3000, "schema": ["person"]}))
                await asyncio.sleep(0.05)
                started = time.perf_counter()
                h = await client.get("/health")
                took = time.perf_counter() - started
                assert not heavy.done()  # answered while the long text was still being counted
                r = await heavy
                assert r.status_code == 200, r.text
                return took, h.status_code

    took, status = asyncio.run(main())
    # on the event loop, /health would wait out the blocking second; a loaded CI core adds
    # tens of ms of scheduling, not half a second
    assert status == 200 and took < 0.5, took


class OneFails(ScriptedEngine):
    """The first prompt fails at once; the others take long (cancellations recorded)."""

    def __init__(self) -> None:
        super().__init__(lambda p, s: '{"person": []}')
        self.started = self.cancelled = self.running = 0

    async def generate(self, prompt, options, json_schema=None, **constraint):
        self.started += 1
        if self.started == 1:
            await asyncio.sleep(0.05)
            from ie_service.errors import GenerationFailed
            raise GenerationFailed("generation failed: boom")
        self.running += 1
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        return Generation("{}", 1, 1, "stop")


def test_prompts_of_a_request_fail_together_and_stay_counted_until_they_end():
    engine = OneFails()
    with client_for(engine, ServiceSettings(max_outstanding=64)) as client:
        text = " ".join(f"w{i}." for i in range(600))  # about 6 chunks at 100 tokens
        started = time.perf_counter()
        r = client.post(NER, json={"text": text, "schema": ["person"], "parameters": {"max_tokens": 380}})
        assert r.status_code == 500 and "boom" in r.json()["error"], r.text
        assert time.perf_counter() - started < 10
        assert engine.started >= 3
        assert engine.running == 0 and engine.cancelled == engine.started - 1  # aborted, not left running
        assert client.app.state.metrics.outstanding._value.get() == 0


def test_priority_puts_one_prompt_requests_first():
    from ie_service.admission import Admission, bind, current_priority, unbind

    admission = Admission(100)
    assert current_priority() == 0
    small, big = admission.enter(), admission.enter()
    big.claim(40)
    token = bind(big)
    try:
        assert current_priority() == 39
    finally:
        unbind(token)
    token = bind(small)
    try:
        assert current_priority() == 0
    finally:
        unbind(token)


# --- strict wire types, blank texts, per-text cap in batches -------------------------------


@pytest.mark.parametrize("path,body,needle", [
    ("/generate", {"instruction": "x", "parameters": {"max_tokens": True}}, "max_tokens"),
    ("/generate", {"instruction": "x", "parameters": {"temperature": "0.5"}}, "temperature"),
    (NER, {"text": "Obama", "schema": ["person"], "constrained": "no"}, "constrained"),
    (NER, {"text": "Obama", "schema": ["person"], "labels_per_prompt": 2.0}, "labels_per_prompt"),
    (NER, {"text": "   \n\t", "schema": ["person"]}, "whitespace"),
])
def test_strict_wire_types_and_blank_text_are_422(path, body, needle):
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert engine.calls == []


def test_blank_batch_texts_are_skipped_with_a_warning():
    engine = ScriptedEngine(lambda p, s: '{"person": ["Obama"]}')
    with client_for(engine) as client:
        r = client.post(f"{NER}/batch", json={"texts": ["", "Obama spoke.", "  "], "schema": ["person"]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(engine.calls) == 1
    assert results[0]["entities"] == [] and "skipped" in results[0]["warnings"][0]
    assert results[1]["entities"][0]["text"] == "Obama"


def test_batch_text_over_the_per_text_cap_is_422_before_any_work(monkeypatch):
    calls = []
    monkeypatch.setattr("ie_service.extraction.extractor.chunk_text", lambda *a, **k: calls.append(1))
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post(f"{NER}/batch", json={"texts": ["short", "a " * 200_000], "schema": ["person"]})
    assert r.status_code == 422, r.text
    assert "200000" in r.json()["error"] and calls == [] and engine.calls == []


# --- JSON schema: keywords that are not enforced, depth ----------------------------------


@pytest.mark.parametrize("schema,keyword", [
    ({"type": "integer", "if": {"minimum": 3}, "then": {"maximum": 5}, "else": {"minimum": 0}}, "if"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "dependentRequired": {"a": ["b"]}},
     "dependentRequired"),
    ({"type": "object", "properties": {"x": {"$dynamicRef": "#meta"}}}, "$dynamicRef"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
    ({"not": {"type": "string"}}, "not"),
])
def test_unenforced_schema_keywords_are_422_naming_them(schema, keyword):
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post("/generate", json={"instruction": "x", "json_schema": schema})
    assert r.status_code == 422, r.text
    assert repr(keyword) in r.json()["error"]
    assert engine.calls == []


def test_enforced_schema_keywords_pass():
    schema = {"type": "object", "title": "t", "properties": {
        "if": {"type": "string", "minLength": 1, "description": "a property named like a keyword"},
        "n": {"type": ["integer", "null"], "minimum": 0},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
        "required": ["if"], "additionalProperties": False}
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post("/generate", json={"instruction": "x", "json_schema": schema})
    assert r.status_code == 200, r.text


def test_schema_nested_975_levels_is_422_not_500():
    schema = '{"type": "array", "items": ' * 975 + '{"type": "integer"}' + "}" * 975
    body = '{"instruction": "x", "json_schema": ' + schema + "}"  # json.dumps itself recurses
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post("/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "nests" in r.json()["error"]


# --- duplicate labels after the parser's normalisation ------------------------------------


@pytest.mark.parametrize("schema", [["first_name", "first name"], ["Org-Name", "org name"],
                                    ["caf\u00e9", "cafe\u0301"], {"Person": "", "PERSON": ""}])
def test_labels_the_parser_cannot_tell_apart_are_422_naming_both(schema):
    engine = ScriptedEngine()
    with client_for(engine) as client:
        r = client.post(NER, json={"text": "Obama", "schema": schema})
    assert r.status_code == 422, r.text
    names = list(schema)
    assert repr(names[0]) in r.json()["error"] and repr(names[1]) in r.json()["error"]


# --- grammar compilation isolated ------------------------------------------------------------


def _burn(seconds: float) -> None:
    """CPU work that, like xgrammar's compile, releases the GIL."""
    import hashlib

    data = b"x" * (1 << 20)
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        hashlib.sha256(data).digest()


def _guard(timeout_s: float):
    from ie_service.engine.json_schema_guard import GrammarCompileGuard

    guard = GrammarCompileGuard(None, timeout_s=timeout_s, workers=2, max_overrunning=3)
    guard._ensure_compiler = lambda: None

    def compile_(text: str) -> None:
        schema = json.loads(text)
        if schema.get("title") == "slow":
            _burn(1.5)
        elif schema.get("title") == "waits":
            time.sleep(3)

    guard._compile = compile_
    return guard


def test_an_overrunning_compile_does_not_starve_later_ones(monkeypatch):
    from ie_service.errors import InvalidJsonSchema

    # on a loaded test machine the burner may get little CPU: here any CPU is its own fault
    monkeypatch.setattr("ie_service.engine.json_schema_guard.CPU_SHARE_OF_OWN_FAULT", 0.0)
    guard = _guard(0.5)

    async def main() -> float:
        for i in range(2):  # fills both workers of a pool on main
            with pytest.raises(InvalidJsonSchema, match="took over 0.5s"):
                await guard.check({"type": "string", "title": "slow", "maxLength": i + 1})
        with pytest.raises(InvalidJsonSchema, match="sent before"):  # remembered: no new compile
            await guard.check({"type": "string", "title": "slow", "maxLength": 1})
        started = time.perf_counter()
        await guard.check({"type": "boolean"})
        return time.perf_counter() - started

    assert asyncio.run(main()) < 0.4


def test_a_compile_slowed_by_the_server_is_503_not_the_clients_422():
    from ie_service.engine.json_schema_guard import GrammarBusy

    guard = _guard(0.3)
    with pytest.raises(GrammarBusy, match="server is busy"):
        asyncio.run(guard.check({"type": "string", "title": "waits"}))


def test_grammar_busy_is_503_with_retry_after():
    from ie_service.engine.json_schema_guard import GrammarBusy

    class Busy(ScriptedEngine):
        async def generate(self, prompt, options, json_schema=None, **constraint):
            raise GrammarBusy("grammar compilation is congested; retry later")

    with client_for(Busy()) as client:
        r = client.post("/generate", json={"instruction": "x", "json_schema": {"type": "boolean"}})
    assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text


# --- the supervised engine --------------------------------------------------------------------


class Mortal(ScriptedEngine):
    def __init__(self) -> None:
        super().__init__()
        self.dead = False
        self.shut = False

    async def check_health(self) -> None:
        if self.dead:
            raise RuntimeError("engine core died")

    def shutdown(self) -> None:
        self.shut = True


def _wait_for(client: TestClient, status: int, limit: float = 5.0, state: str | None = None) -> dict:
    last = []

    def answered() -> dict | None:
        last[:] = [r := client.get("/health")]
        return r.json() if r.status_code == status and (state is None or r.json()["status"] == state) else None

    return wait_until(answered, limit, what=lambda: f"/health answering {status}: {last[0].status_code} {last[0].text}")


def test_a_dead_engine_is_replaced_in_place():
    engines: list[Mortal] = []
    gate = threading.Event()

    def factory() -> Mortal:
        if engines:
            gate.wait(5)  # the restart takes a while: /health says so meanwhile
        engines.append(Mortal())
        return engines[-1]

    app = create_app(factory, supervisor=lambda f: EngineSupervisor(f, monitor_every_s=0.02))
    with TestClient(app) as client:
        assert client.post("/generate", json={"instruction": "x"}).status_code == 200
        engines[0].dead = True
        body = _wait_for(client, 503, state="restarting")  # "dead" until the monitor sees it
        assert "died" in body["error"]
        r = client.post("/generate", json={"instruction": "x"})
        assert r.status_code == 503 and "retry-after" in r.headers
        gate.set()
        assert _wait_for(client, 200)["status"] == "ok"
        assert client.post("/generate", json={"instruction": "x"}).status_code == 200
        assert len(engines) == 2 and engines[0].shut


def test_restarts_that_keep_failing_give_up_with_a_non_zero_exit():
    codes: list[int] = []
    starts = []

    def factory() -> Mortal:
        starts.append(1)
        if len(starts) > 1:
            raise RuntimeError("no memory for the KV cache")
        engine = Mortal()
        engine.dead = True
        return engine

    app = create_app(factory, supervisor=lambda f: EngineSupervisor(
        f, monitor_every_s=0.02, backoff_s=(0.01,), on_give_up=codes.append))
    with TestClient(app) as client:
        body = _wait_for(client, 503)
        wait_until(lambda: codes, 5, what="the supervisor giving up")
        assert codes == [3] and len(starts) == 4
        assert client.get("/health").json()["status"] == "failed"


class Frozen(ScriptedEngine):
    """An engine whose generations never progress while ``frozen`` (kill -STOP)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = threading.Event()
        self.last_progress = time.monotonic()

    async def generate(self, prompt, options, json_schema=None, **constraint):
        while self.frozen.is_set():
            await asyncio.sleep(0.01)
        self.last_progress = time.monotonic()
        return await super().generate(prompt, options, json_schema)


def test_a_hung_engine_is_503_and_healthy_again_when_it_answers():
    engine = Frozen()
    app = create_app(lambda: engine, supervisor=lambda f: EngineSupervisor(
        f, monitor_every_s=0.02, probe_every_s=0.05, hung_after_s=0.3))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        engine.frozen.set()
        body = _wait_for(client, 503, limit=3)
        assert body["status"] == "hung" and "probe" in body["error"]
        engine.frozen.clear()
        _wait_for(client, 200, limit=3)


def test_a_busy_engine_making_progress_is_healthy():
    engine = Frozen()
    supervisor = EngineSupervisor(lambda: engine, probe_every_s=0.0, hung_after_s=0.3)
    supervisor.start()

    async def main() -> list[str]:
        engine.frozen.set()  # the probe waits ...
        supervisor._maybe_probe()
        verdicts = []
        stop = time.monotonic() + 1.0
        while time.monotonic() < stop:  # ... but other work keeps producing output
            engine.last_progress = time.monotonic()
            verdicts.append((await supervisor.health()).status)
            await asyncio.sleep(0.05)
        stalled = time.monotonic() + 0.5
        while time.monotonic() < stalled:  # no output from anyone: hung
            await asyncio.sleep(0.05)
        verdicts.append((await supervisor.health()).status)
        engine.frozen.clear()
        await supervisor.stop()
        return verdicts

    verdicts = asyncio.run(main())
    assert set(verdicts[:-1]) == {"ok"} and verdicts[-1] == "hung", verdicts


def test_the_probe_is_one_token_at_top_priority():
    """The probe asks for one token (bounded), at top priority."""
    seen = []

    class Recording(ScriptedEngine):
        last_progress = 0.0

        async def generate(self, prompt, options, json_schema=None, priority=None, **constraint):
            seen.append((options.max_tokens, priority))
            return Generation("x", 1, 1, "length")

    app = create_app(Recording, supervisor=lambda f: EngineSupervisor(
        f, monitor_every_s=0.02, probe_every_s=0.0))
    with TestClient(app) as client:
        time.sleep(0.2)
        assert not seen  # idle, nobody asking: no probe
        client.get("/health")
        wait_until(lambda: seen, 3, what="a probe")
    assert seen[0] == (1, -1)


def test_the_monitor_probes_while_work_is_in_flight():
    """Generations in flight and no output for a while: the monitor probes by itself."""
    seen = []

    class Busy(ScriptedEngine):
        last_progress = 0.0
        in_flight = 1  # a generation waits on the engine

        async def generate(self, prompt, options, json_schema=None, priority=None, **constraint):
            seen.append(options.max_tokens)
            return Generation("x", 1, 1, "length")

    app = create_app(Busy, supervisor=lambda f: EngineSupervisor(f, monitor_every_s=0.02, probe_every_s=0.0))
    with TestClient(app):
        wait_until(lambda: seen, 3, what="a probe")
    assert seen == [1] or seen[:1] == [1]


def test_engine_steps_are_progress_without_any_output():
    """A long prefill outputs nothing for seconds, but its engine steps complete: the step
    clock (vLLM's stat-logger interface) moves ``last_progress``, so health says busy, not hung."""
    from types import SimpleNamespace

    from ie_service.engine.vllm_engine import Engine, StepStats

    steps = StepStats()
    recorder = steps.logger_factory()(SimpleNamespace(), engine_index=0)
    engine = Engine.__new__(Engine)
    engine._steps, engine._last_output = steps, 0.0
    before = engine.last_progress
    time.sleep(0.01)
    recorder.record(scheduler_stats=SimpleNamespace(), iteration_stats=None)  # a prefill step: no output
    assert engine.last_progress > before
    recorder.record(scheduler_stats=None, iteration_stats=SimpleNamespace(finished_requests=[1, 2]))
    assert steps.finished == {0: 2}


def test_work_arriving_at_an_idle_engine_is_not_probed_at_once():
    """The engine was idle for long (no progress since); a request arrives: the monitor waits
    ``probe_every_s`` from that moment before it probes, instead of probing at once because
    the last progress is old (each probe is an engine request of no client)."""
    seen = []

    class Idle(ScriptedEngine):
        last_progress = 0.0  # the last step was long ago
        in_flight = 0

        async def generate(self, prompt, options, json_schema=None, priority=None, **constraint):
            seen.append(time.monotonic())
            return Generation("x", 1, 1, "length")

    engine = Idle()
    app = create_app(lambda: engine, supervisor=lambda f: EngineSupervisor(
        f, monitor_every_s=0.02, probe_every_s=0.5))
    with TestClient(app) as client:
        time.sleep(0.1)
        arrived = time.monotonic()
        engine.in_flight = 1  # work waits on the engine
        wait_until(lambda: seen, 3, what="a probe")
        assert seen[0] - arrived >= 0.45, seen
        assert "ie_health_probes 1.0" in client.get("/metrics").text


# --- engine prompts per request, outstanding prompts (issue 12, part 4) ---------------------------------


def test_10000_labels_is_422_naming_the_limit_and_reaches_no_engine():
    engine = ScriptedEngine(lambda p, s: "{}")
    with client_for(engine) as client:
        r = client.post("/extract/ner", json={"text": "Obama met Merkel.",
                                              "schema": [f"type{i}" for i in range(10_000)]})
    assert r.status_code == 422 and "at most 256" in r.json()["error"], r.text
    assert engine.calls == []


def test_prompts_per_request_capped_with_413():
    engine = ScriptedEngine(lambda p, s: "{}")
    with client_for(engine) as client:
        r = client.post("/extract/ner", json={"text": "Obama met Merkel.", "labels_per_prompt": 1,
                                              "schema": [f"type{i}" for i in range(100)]})
        assert r.status_code == 413 and "at most 64" in r.json()["error"], r.text
        # a batch whose texts together pass the cap: refused as a whole, nothing sent
        batch = client.post("/extract/ner/batch", json={"texts": [f"Text {i}." for i in range(100)],
                                                        "schema": ["person"]})
        assert batch.status_code == 413, batch.text
        assert engine.calls == []
        assert 'ie_rejected_total{reason="prompts"} 2.0' in client.get("/metrics").text  # once per request
        ok = client.post("/extract/ner/batch", json={"texts": [f"Text {i}." for i in range(10)],
                                                     "schema": ["person"]})
        assert ok.status_code == 200 and len(engine.calls) == 10


def test_outstanding_limit_counts_engine_prompts_not_requests():
    client = client_for(slowed(ScriptedEngine(lambda p, s: "{}"), 1.0), ServiceSettings(max_outstanding=10))
    big = {"text": "Obama met Merkel.", "labels_per_prompt": 1, "schema": [f"t{i}" for i in range(8)]}
    with client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/extract/ner", json=big)
        wait_until(lambda: "ie_outstanding_requests 8.0" in client.get("/metrics").text.splitlines(), 5,
                   what="8 prompts in flight")
        second = client.post("/extract/ner", json={**big, "schema": [f"u{i}" for i in range(4)]})
        assert second.status_code == 429 and second.headers["retry-after"] == "1", second.text
        assert client.post("/generate", json={"instruction": "short"}).status_code == 200  # 9 <= 10
        assert first.result().status_code == 200
        metrics = client.get("/metrics").text
        assert "ie_outstanding_requests 0.0" in metrics
        assert 'ie_rejected_total{reason="queue"} 1.0' in metrics


def test_admission_bookkeeping():
    from ie_service.admission import Admission
    from ie_service.errors import QueueFull, TooManyPrompts

    seen = []
    admission = Admission(5, max_prompts_per_request=4, on_change=seen.append)
    budget = admission.enter()
    budget.claim(3)  # 1 slot from admission + 2 more
    assert admission.outstanding == 3
    other = admission.enter()
    with pytest.raises(QueueFull):
        other.claim(4)
    with pytest.raises(TooManyPrompts, match="at most 4"):
        budget.claim(2)
    budget.close()
    other.close()
    assert admission.outstanding == 0 and seen[-1] == 0
