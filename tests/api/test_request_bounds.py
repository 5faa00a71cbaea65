"""Issue 31 #3/#8: every field a client sends is bounded (422 naming the field, before any
engine work), the OpenAI routes are checked strictly (400 in OpenAI's shape, before vLLM's
layer), and header size and count are bounded (431; what the server reads: 400). Values at
each limit still pass."""

from __future__ import annotations

import socket

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.guard import MAX_HEADER_BYTES, MAX_HEADER_COUNT, UVICORN_LIMITS
from ie_service.api.wire import MAX_LOGIT_BIAS_TOKENS, MAX_LOGPROBS
from ie_service.engine.json_schema_guard import (
    MAX_PATTERN_REPEAT, MAX_PATTERN_SIZE, MAX_SCHEMA_COUNT, MAX_SCHEMA_NUMBER, pattern_size,
)
from ie_service.engine.sampling import MAX_STOP_CHARS, MAX_STOP_STRINGS, MAX_TOP_K
from ie_service.extraction.wire import (
    MAX_DESCRIPTION_CHARS, MAX_EXAMPLE_CHARS, MAX_EXAMPLES, MAX_LABEL_CHARS, MAX_NAME_CHARS, MAX_SCHEMA_ENTRIES,
)
from waits import wait_until


class OpenAIStandIn:
    """vLLM's serving layer: records the bodies that got past the route's checks."""

    def __init__(self) -> None:
        self.bodies: list = []

    async def chat(self, body, raw_request):
        self.bodies.append(body)
        return JSONResponse({"object": "chat.completion"})

    async def completion(self, body, raw_request):
        self.bodies.append(body)
        return JSONResponse({"object": "text_completion"})


@pytest.fixture(scope="module")
def engine():
    engine = ScriptedEngine(lambda prompt, schema: "{}" if schema else "ok")
    engine.max_model_len = 100_000
    engine.openai = lambda: engine.api
    engine.api = OpenAIStandIn()
    return engine


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(lambda: engine)) as c:
        yield c


def string(n: int) -> str:
    return "a" * n


# --- /generate -------------------------------------------------------------------------------------

def generate(**parameters) -> dict:
    return {"instruction": "x", "parameters": parameters}


def with_schema(schema: dict) -> dict:
    return {"instruction": "x", "json_schema": schema}


def prop(**keywords) -> dict:
    return {"type": "object", "properties": {"p": keywords}}


TOO_BIG_FOR_GENERATE = [
    (generate(top_k=10**12), "top_k"),
    (generate(top_k=MAX_TOP_K + 1), "top_k"),
    (generate(stop=string(100_000)), "stop"),
    (generate(stop=["ok", string(MAX_STOP_CHARS + 1)]), "stop"),
    (generate(stop=["s"] * (MAX_STOP_STRINGS + 1)), "stop"),
    (generate(max_tokens=10**9), "max_tokens"),
    ({"instruction": "x", "adapter": string(MAX_NAME_CHARS + 1)}, "adapter"),
    (with_schema({"type": "array", "minItems": 10**9}), "minItems"),
    (with_schema({"type": "array", "maxItems": MAX_SCHEMA_COUNT + 1}), "maxItems"),
    (with_schema(prop(type="string", minLength=10**9)), "minLength"),
    (with_schema(prop(type="string", maxLength=MAX_SCHEMA_COUNT + 1)), "maxLength"),
    (with_schema({"type": "object", "minProperties": 10**6}), "minProperties"),
    (with_schema({"$defs": {"d": {"type": "object", "maxProperties": 10**6}}, "$ref": "#/$defs/d"}),
     "maxProperties"),
    (with_schema(prop(type="integer", minimum=-(10**300))), "minimum"),
    (with_schema(prop(type="integer", maximum=10**400)), "maximum"),
    (with_schema(prop(type="number", exclusiveMaximum=1e300)), "exclusiveMaximum"),
    (with_schema(prop(type="integer", maximum=MAX_SCHEMA_NUMBER + 1)), "maximum"),
    (with_schema(prop(type="string", pattern="(a{1000}){1000}")), "expand"),
    (with_schema(prop(type="string", pattern=f"a{{{MAX_PATTERN_REPEAT + 1}}}")), "repeats"),
    (with_schema(prop(type="string", pattern="a{1,99999999999999}")), "repeats"),
    (with_schema({"type": "object", "properties": {  # the patterns of a schema add up
        f"p{i}": {"type": "string", "pattern": "[a-z]{1000}"} for i in range(MAX_PATTERN_SIZE // 1000 + 1)}}),
     "expand"),
    (with_schema({"type": "object", "patternProperties": {"^(ab{100}){100}$": {"type": "string"}}}), "expand"),
]


@pytest.mark.parametrize("body,needle", TOO_BIG_FOR_GENERATE)
def test_generate_refuses_unbounded_fields(client, engine, body, needle):
    before = len(engine.calls)
    r = client.post("/generate", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert len(engine.calls) == before  # refused before the engine


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_schema_limit_is_422(client, number):
    body = b'{"instruction": "x", "json_schema": {"type": "number", "minimum": %s}}' % number
    r = client.post("/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "minimum" in r.json()["error"]


AT_THE_LIMITS = [
    generate(top_k=MAX_TOP_K, max_tokens=16, stop=[string(MAX_STOP_CHARS)] * MAX_STOP_STRINGS),
    {"instruction": "x", "adapter": None},
    with_schema({"type": "array", "minItems": 1, "maxItems": MAX_SCHEMA_COUNT, "items": {"type": "integer"}}),
    with_schema(prop(type="string", minLength=MAX_SCHEMA_COUNT, maxLength=MAX_SCHEMA_COUNT)),
    with_schema(prop(type="integer", minimum=-MAX_SCHEMA_NUMBER, maximum=MAX_SCHEMA_NUMBER)),
    with_schema({"type": "object", "properties": {
        f"p{i}": {"type": "string", "pattern": f"[a-z]{{{MAX_PATTERN_REPEAT}}}"}
        for i in range(MAX_PATTERN_SIZE // MAX_PATTERN_REPEAT)}}),
    with_schema(prop(type="string", pattern="^(ab{9}){100}$")),  # 1000 expanded
]


@pytest.mark.parametrize("body", AT_THE_LIMITS)
def test_generate_takes_values_at_the_limits(client, body):
    r = client.post("/generate", json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("pattern,size", [
    ("abc", 3), ("a{3}", 3), ("(ab{2}){3}", 9), ("[a-z{}]{10}", 10), (r"\d{5}", 5), ("a|b{4}", 5),
    ("a{2,5}?", 5), ("a{3,}", 3), ("a{0}b", 1), ("a*b+c?", 3), (r"\{9999\}", 6), ("x{", 2),
])
def test_pattern_size_counts_repetitions(pattern, size):
    assert pattern_size(pattern) == size


# --- /extract --------------------------------------------------------------------------------------

def ner(**fields) -> dict:
    return {"text": "Obama visited Paris.", "schema": ["person"], **fields}


TOO_BIG_FOR_EXTRACT = [
    ("/extract/ner", ner(schema=[string(MAX_LABEL_CHARS + 1)]), "name in the schema"),
    ("/extract/ner", ner(schema={"person": string(MAX_DESCRIPTION_CHARS + 1)}), "description"),
    ("/extract/ner", ner(schema={string(MAX_LABEL_CHARS + 1): "d"}), "name in the schema"),
    ("/extract/ner", ner(schema=[f"l{i}" for i in range(MAX_SCHEMA_ENTRIES + 1)]), "entries"),
    ("/extract/re", ner(schema=[{"relation": "founded by", "head_type": string(MAX_LABEL_CHARS + 1)}]), "name"),
    ("/extract/re", ner(schema=[{"relation": "r", "description": string(MAX_DESCRIPTION_CHARS + 1)}]),
     "description"),
    ("/extract/ee", ner(schema={"attack": [f"role{i}" for i in range(MAX_SCHEMA_ENTRIES + 1)]}), "entries"),
    ("/extract/ee", ner(schema=[{"event_type": "attack", "arguments": [string(MAX_LABEL_CHARS + 1)]}]), "name"),
    ("/extract/ner", ner(template=string(MAX_NAME_CHARS + 1)), "template"),
    ("/extract/ner", ner(adapter=string(MAX_NAME_CHARS + 1)), "adapter"),
    ("/extract/ner", ner(examples=[{"input": string(MAX_EXAMPLE_CHARS + 1), "output": {}}]), "examples.0.input"),
    ("/extract/ner", ner(examples=[{"input": "x", "output": {"person": [string(MAX_EXAMPLE_CHARS)]}}]), "output"),
    ("/extract/ner", ner(examples=[{"input": "x", "output": {}}] * (MAX_EXAMPLES + 1)), "examples"),
    ("/extract/ner", ner(parameters={"top_k": 10**12}), "top_k"),
    ("/extract/ner", ner(parameters={"stop": string(MAX_STOP_CHARS + 1)}), "stop"),
    ("/extract/ner/batch", {"texts": ["x"], "schema": [string(MAX_LABEL_CHARS + 1)]}, "name in the schema"),
]


@pytest.mark.parametrize("path,body,needle", TOO_BIG_FOR_EXTRACT)
def test_extract_refuses_unbounded_fields(client, engine, path, body, needle):
    before = len(engine.calls)
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]
    assert len(engine.calls) == before


@pytest.mark.parametrize("path,body", [
    ("/extract/ner", ner(schema={string(MAX_LABEL_CHARS): string(MAX_DESCRIPTION_CHARS)})),
    ("/extract/ner", ner(examples=[{"input": string(MAX_EXAMPLE_CHARS), "output": {"person": []}}])),
    ("/extract/re", ner(schema=[{"relation": "founded by", "head_type": string(MAX_LABEL_CHARS),
                                 "description": string(MAX_DESCRIPTION_CHARS)}])),
    ("/extract/ee", ner(schema={"attack": [f"role{i}" for i in range(40)]})),
])
def test_extract_takes_values_at_the_limits(client, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text


# --- values only the engine used to check, lone surrogates (issue 12, part 4) -------------------------


@pytest.mark.parametrize("parameters,needle", [
    ({"temperature": 10}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"stop": ""}, "stop"),
    ({"stop": ["ok", ""]}, "stop"),
    ({"seed": 2**64}, "seed"),
])
def test_parameters_the_engine_refuses_are_422(client, engine, parameters, needle):
    before = len(engine.calls)
    r = client.post("/generate", json={"instruction": "x", "parameters": parameters})
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    ex = client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"], "parameters": parameters})
    assert ex.status_code == 422 and needle in ex.json()["error"], ex.text
    assert len(engine.calls) == before


def test_parameters_at_the_engine_limits_pass(client):
    r = client.post("/generate", json={"instruction": "x", "parameters": {
        "temperature": 2, "seed": 2**64 - 1, "stop": ["\n"]}})
    assert r.status_code == 200, r.text


LONE = "\\ud800"  # as it appears in the JSON text


@pytest.mark.parametrize("path,body", [
    ("/generate", '{"instruction": "hi LONE"}'),
    ("/extract/ner", '{"text": "Obama.", "schema": ["perLONEson"]}'),
    ("/extract/ner", '{"text": "Obama.", "schema": {"person": "a humanLONE"}}'),
    ("/extract/ner", '{"text": "Obama.", "schema": ["person"], "examples": [{"input": "aLONE", "output": {}}]}'),
    ("/extract/ner/batch", '{"texts": ["ok", "badLONE"], "schema": ["person"]}'),
    ("/extract/ner", '{"text": "Obama.", "schema": ["person"], "x": "\\udc00"}'),  # lone low half
])
def test_lone_surrogates_are_422(client, engine, path, body):
    before = len(engine.calls)
    r = client.post(path, content=body.replace("LONE", LONE).encode(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.json()["error"], r.text
    assert len(engine.calls) == before


def test_surrogate_scanner_accepts_pairs_and_escaped_backslashes():
    from ie_service.admission import find_lone_surrogate

    assert find_lone_surrogate(b'{"a": "\\ud83d\\ude00"}') is None  # an emoji as a pair
    assert find_lone_surrogate(b'{"a": "\\\\ud800"}') is None  # a backslash, then text
    assert find_lone_surrogate(b'{"a": "\\ud83d x"}') == ("\\ud83d", 7)
    assert find_lone_surrogate(b'{"a": "\\\\\\ud800"}') == ("\\ud800", 9)


# --- the OpenAI routes ------------------------------------------------------------------------------

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "m", "prompt": "hi"}

NOT_STRICT = [
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "bogus", "content": "hi"}]}, "messages.0.role"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"content": "hi"}]}, "messages.0.role"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": "2"}, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 10**9}, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "max_completion_tokens": -1}, "max_completion_tokens"),
    ("/v1/chat/completions", {**CHAT, "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {**CHAT, "stream": 1}, "stream"),
    ("/v1/chat/completions", {**CHAT, "logit_bias": {"50": 1000}}, "logit_bias"),
    ("/v1/chat/completions", {**CHAT, "logit_bias": {"50": -100.5}}, "logit_bias"),
    ("/v1/chat/completions", {**CHAT, "logit_bias": {"fifty": 1}}, "logit_bias"),
    ("/v1/chat/completions", {**CHAT, "logit_bias": {str(i): 1 for i in range(MAX_LOGIT_BIAS_TOKENS + 1)}},
     "logit_bias"),
    ("/v1/chat/completions", {**CHAT, "logprobs": "true"}, "logprobs"),
    ("/v1/chat/completions", {**CHAT, "top_logprobs": MAX_LOGPROBS + 1}, "top_logprobs"),
    ("/v1/chat/completions", {**CHAT, "temperature": "0.5"}, "temperature"),
    ("/v1/chat/completions", {**CHAT, "temperature": 3}, "temperature"),
    ("/v1/chat/completions", {**CHAT, "top_k": 10**12}, "top_k"),
    ("/v1/chat/completions", {**CHAT, "top_p": 0}, "top_p"),
    ("/v1/chat/completions", {**CHAT, "seed": 2**64}, "seed"),
    ("/v1/chat/completions", {**CHAT, "stop": string(MAX_STOP_CHARS + 1)}, "stop"),
    ("/v1/chat/completions", {**CHAT, "stop": ["x"] * (MAX_STOP_STRINGS + 1)}, "stop"),
    ("/v1/chat/completions", {**CHAT, "n": 0}, "n"),
    ("/v1/chat/completions", {**CHAT, "n": "2"}, "n"),
    ("/v1/chat/completions", {**CHAT, "model": string(MAX_NAME_CHARS + 1)}, "model"),
    ("/v1/chat/completions", {**CHAT, "messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"model": "m"}, "messages"),
    ("/v1/chat/completions", [CHAT], "body"),
    ("/v1/completions", {**COMPLETION, "best_of": 0}, "best_of"),
    ("/v1/completions", {**COMPLETION, "best_of": 3}, "best_of"),  # the engine cannot rank extra samples
    ("/v1/completions", {**COMPLETION, "max_tokens": "2"}, "max_tokens"),
    ("/v1/completions", {**COMPLETION, "echo": "yes"}, "echo"),
    ("/v1/completions", {**COMPLETION, "logprobs": True}, "logprobs"),
    ("/v1/completions", {**COMPLETION, "logprobs": MAX_LOGPROBS + 1}, "logprobs"),
    ("/v1/completions", {**COMPLETION, "prompt": 5}, "prompt"),
    ("/v1/completions", {**COMPLETION, "prompt": [1, "2"]}, "prompt"),
    ("/v1/completions", {**COMPLETION, "prompt": [1, -2]}, "prompt"),
    ("/v1/completions", {**COMPLETION, "frequency_penalty": 2.5}, "frequency_penalty"),
    ("/v1/completions", {**COMPLETION, "structured_outputs": {"regex": "(a{1000}){1000}"}}, "structured_outputs"),
    ("/v1/completions", {**COMPLETION, "structured_outputs": {"regex": "a{5000}"}}, "structured_outputs"),
    ("/v1/chat/completions", {**CHAT, "structured_outputs": {"grammar": "root ::= \"a\""}}, "structured_outputs"),
    ("/v1/chat/completions", {**CHAT, "structured_outputs": {"structural_tag": "{}"}}, "structured_outputs"),
    ("/v1/chat/completions", {**CHAT, "structured_outputs": {"choice": [str(i) for i in range(1001)]}},
     "structured_outputs"),
]


@pytest.mark.parametrize("path,body,param", NOT_STRICT)
def test_openai_routes_check_strictly_before_vllm(client, engine, path, body, param):
    before = len(engine.api.bodies)
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text  # OpenAI's (and vLLM's) status: the openai package's BadRequestError
    error = r.json()["error"]
    assert error["code"] == 400 and error["type"] == "BadRequestError"
    assert error["param"].startswith(param) and param in error["message"]
    assert len(engine.api.bodies) == before  # vLLM's layer never saw it


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", CHAT),
    ("/v1/chat/completions", {**CHAT, "messages": [
        {"role": role, "content": "x"} for role in ("system", "developer", "user", "assistant", "tool")]}),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 2, "stream": False, "temperature": 1, "top_p": 1,
                              "top_k": MAX_TOP_K, "seed": 2**64 - 1, "top_logprobs": MAX_LOGPROBS, "logprobs": True,
                              "logit_bias": {str(i): 100 for i in range(MAX_LOGIT_BIAS_TOKENS - 1)} | {"7": -100},
                              "stop": [string(MAX_STOP_CHARS)] * MAX_STOP_STRINGS, "n": 2,
                              "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                              "tool_choice": "none"}),  # a field checked by vLLM alone
    ("/v1/completions", {**COMPLETION, "best_of": 2, "n": 2, "echo": True, "logprobs": MAX_LOGPROBS,
                         "max_tokens": 0}),
    ("/v1/completions", {**COMPLETION, "prompt": [[1, 2], [3]]}),
    ("/v1/completions", {**COMPLETION, "n": None, "stream": None, "structured_outputs": {"regex": "[a-z]{1000}"}}),
    ("/v1/chat/completions", {**CHAT, "structured_outputs": {"choice": [str(i) for i in range(1000)]}}),
])
def test_openai_routes_pass_valid_bodies_unchanged(client, engine, path, body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert engine.api.bodies[-1] == body


# --- headers: a real uvicorn with serve's limits ----------------------------------------------------------

@pytest.fixture(scope="module")
def live_url():
    import threading

    import uvicorn

    from ie_service.local_server import free_port

    engine = ScriptedEngine()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: engine), port=port, log_level="warning",
                                           **UVICORN_LIMITS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, interval=0.05, what="uvicorn started")
    yield port
    server.should_exit = True
    thread.join(10)


def raw_request(port: int, header_lines: list[str]) -> str:
    """The status line answered to ``GET /health`` with these header lines ("" when the
    server closed the connection without one)."""
    head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    data = (head + "".join(f"{line}\r\n" for line in header_lines) + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(data)
            answer = sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return ""
    return answer.split(b"\r\n", 1)[0].decode()


def test_header_count_at_the_limit_passes_one_more_is_431(live_url):
    fields = [f"X-H{i}: v" for i in range(MAX_HEADER_COUNT - 2)]  # + Host and Connection
    assert raw_request(live_url, fields).endswith("200 OK")
    assert raw_request(live_url, [*fields, "X-One-More: v"]).startswith("HTTP/1.1 431")
    assert raw_request(live_url, [f"X-H{i}: v" for i in range(2000)]).startswith("HTTP/1.1 431")


def test_header_bytes_are_bounded(live_url):
    assert raw_request(live_url, [f"X-Big: {string(MAX_HEADER_BYTES // 2)}"]).endswith("200 OK")
    # parsed whole (one read): the guard's 431; longer: the server stops reading (400, closed)
    over = raw_request(live_url, [f"X-Big: {string(MAX_HEADER_BYTES)}"])
    assert over.startswith("HTTP/1.1 431"), over
    assert raw_request(live_url, [f"X-H{i}: {string(500)}" for i in range(70)]).startswith("HTTP/1.1 431")
    for huge in ([f"X-Big: {string(4 * 1024 * 1024)}"], [f"X-H{i}: {string(8000)}" for i in range(90)]):
        refused = raw_request(live_url, huge)
        assert refused in ("", "HTTP/1.1 400 Bad Request"), refused  # never read whole, never a 200


def test_431_carries_a_message():
    with TestClient(create_app(lambda: ScriptedEngine())) as c:
        r = c.get("/health", headers={f"x-h{i}": "v" for i in range(MAX_HEADER_COUNT + 1)})
        assert r.status_code == 431 and f"at most {MAX_HEADER_COUNT} fields" in r.json()["error"]
        r = c.get("/health", headers={"x-big": string(MAX_HEADER_BYTES)})
        assert r.status_code == 431 and f"{MAX_HEADER_BYTES} bytes" in r.json()["error"]
        assert 'ie_rejected_total{reason="headers"} 2.0' in c.get("/metrics").text
