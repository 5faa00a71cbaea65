"""Issue 12, part 4: every finding of the probe (server on loopback, embedded model) as a
fast test. API findings run through the app with the scripted engine, or through the real
:class:`ie_service.engine.vllm_engine.Engine` on a fake ``AsyncLLM`` (vLLM's own SamplingParams
validation, the real tokenizer and xgrammar, no engine process)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fastapi.testclient import TestClient

from fakes import ScriptedEngine, slowed
from ie_service.api.app import create_app
from ie_service.api.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent


def client_for(settings: ServiceSettings | None = None, delay: float = 0.0, engine=None):
    engine = slowed(engine or ScriptedEngine(lambda p, s: "{}"), delay)
    return TestClient(create_app(lambda: engine, settings=settings)), engine


# --- 1. one request starves everyone -------------------------------------------------------------


def test_10000_labels_is_422_naming_the_limit_and_reaches_no_engine():
    client, engine = client_for()
    with client:
        r = client.post("/extract/ner", json={"text": "Obama met Merkel.",
                                              "schema": [f"type{i}" for i in range(10_000)]})
    assert r.status_code == 422 and "at most 256" in r.json()["error"], r.text
    assert engine.calls == []


def test_prompts_per_request_capped_with_413():
    client, engine = client_for()
    with client:
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
    client, engine = client_for(ServiceSettings(max_outstanding=10), delay=1.0)
    big = {"text": "Obama met Merkel.", "labels_per_prompt": 1, "schema": [f"t{i}" for i in range(8)]}
    with client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/extract/ner", json=big)
        time.sleep(0.4)  # 8 prompts in flight
        gauge = [line for line in client.get("/metrics").text.splitlines()
                 if line.startswith("ie_outstanding_requests ")]
        assert gauge == ["ie_outstanding_requests 8.0"]
        second = client.post("/extract/ner", json={**big, "schema": [f"u{i}" for i in range(4)]})
        assert second.status_code == 429 and second.headers["retry-after"] == "1", second.text
        assert client.post("/generate", json={"instruction": "short"}).status_code == 200  # 9 <= 10
        assert first.result().status_code == 200
        metrics = client.get("/metrics").text
        assert "ie_outstanding_requests 0.0" in metrics
        assert 'ie_rejected_total{reason="queue"} 1.0' in metrics


def test_admission_bookkeeping():
    from ie_service.admission import Admission
    from ie_service.request_errors import QueueFull, TooManyPrompts

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


# --- 2. client errors that were 500 -----------------------------------------------------------------


@pytest.mark.parametrize("parameters,needle", [
    ({"temperature": 10}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"stop": ""}, "stop"),
    ({"stop": ["ok", ""]}, "stop"),
    ({"seed": 2**64}, "seed"),
])
def test_parameters_the_engine_refuses_are_422(parameters, needle):
    client, engine = client_for()
    with client:
        r = client.post("/generate", json={"instruction": "x", "parameters": parameters})
        assert r.status_code == 422 and needle in r.json()["error"], r.text
        ex = client.post("/extract/ner", json={"text": "Obama.", "schema": ["person"], "parameters": parameters})
        assert ex.status_code == 422 and needle in ex.json()["error"], ex.text
    assert engine.calls == []


def test_parameters_at_the_engine_limits_pass():
    client, engine = client_for()
    with client:
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
def test_lone_surrogates_are_422(path, body):
    client, engine = client_for()
    with client:
        r = client.post(path, content=body.replace("LONE", LONE).encode(),
                        headers={"content-type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.json()["error"], r.text
    assert engine.calls == []


def test_surrogate_scanner_accepts_pairs_and_escaped_backslashes():
    from ie_service.admission import find_lone_surrogate

    assert find_lone_surrogate(b'{"a": "\\ud83d\\ude00"}') is None  # an emoji as a pair
    assert find_lone_surrogate(b'{"a": "\\\\ud800"}') is None  # a backslash, then text
    assert find_lone_surrogate(b'{"a": "\\ud83d x"}') == ("\\ud83d", 7)
    assert find_lone_surrogate(b'{"a": "\\\\\\ud800"}') == ("\\ud800", 9)


# --- the real Engine class on a fake AsyncLLM ----------------------------------------------------------


class FakeAsyncLLM:
    """Stands in for vLLM's AsyncLLM: records the SamplingParams, answers or raises."""

    def __init__(self, tokenizer, finish: str = "stop", raises: BaseException | None = None) -> None:
        self.tokenizer, self.finish, self.raises = tokenizer, finish, raises
        self.calls = []
        self.model_config = SimpleNamespace(get_vocab_size=lambda: 49152)

    def get_tokenizer(self):
        return self.tokenizer

    async def generate(self, prompt, params, request_id, **kwargs):
        self.calls.append(params)
        if self.raises is not None:
            raise self.raises
        yield SimpleNamespace(num_cached_tokens=0, outputs=[SimpleNamespace(
            text="" if self.finish == "error" else '{"a": 1}', token_ids=[1, 2], finish_reason=self.finish)])

    async def check_health(self):
        return None

    def shutdown(self):
        return None


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ie_service.models.embedded import ensure_embedded_model

    return AutoTokenizer.from_pretrained(ensure_embedded_model())


@pytest.fixture()
def real_engine(tokenizer):
    from ie_service.engine.vllm_engine import Engine
    from ie_service.engine.config import EngineConfig

    def make(**fake):
        llm = FakeAsyncLLM(tokenizer, **fake)
        return Engine(llm, EngineConfig(prompt_format="raw"), "fake", "fake"), llm

    return make


def post_generate(engine, body):
    with TestClient(create_app(lambda: engine)) as client:
        return client.post("/generate", json=body)


@pytest.mark.parametrize("schema,needle", [
    ({"type": "nonsense"}, "not a valid JSON Schema"),
    ({"$ref": "#/$defs/missing"}, "points to nothing"),
    ({"type": "string", "pattern": "(["}, "pattern"),
    ({"type": "string", "pattern": "(?<=a)b"}, "grammar"),  # valid for Python, not for xgrammar
])
def test_invalid_json_schema_is_422_before_the_engine(real_engine, schema, needle):
    engine, llm = real_engine()
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code == 422 and needle in r.json()["error"], r.text
    assert llm.calls == []


def test_vllm_validation_errors_are_422(real_engine):
    """Whatever vLLM's SamplingParams refuses (here: past the API's checks) is a 422."""
    from ie_service.request_errors import InvalidRequest
    from ie_service.engine.sampling import SamplingOptions

    engine, llm = real_engine()
    hot = SamplingOptions.model_construct(**{**SamplingOptions().model_dump(), "temperature": 5.0})
    with pytest.raises(InvalidRequest, match="temperature"):
        asyncio.run(engine.generate("x", hot))
    from vllm.exceptions import VLLMValidationError

    engine, llm = real_engine(raises=VLLMValidationError("stop cannot contain an empty string."))
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 422 and "empty string" in r.json()["error"]


# --- 3. per-request engine failure is not "engine unavailable" -------------------------------------------


def test_per_request_engine_failure_is_500_with_reason_not_503(real_engine):
    from vllm.v1.engine.exceptions import EngineGenerateError

    failure = EngineGenerateError()
    failure.__cause__ = OverflowError("int too big to convert")
    engine, _ = real_engine(raises=failure)
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 500 and "OverflowError: int too big" in r.json()["error"], r.text


def test_dead_engine_still_503(real_engine):
    from vllm.v1.engine.exceptions import EngineDeadError

    engine, _ = real_engine(raises=EngineDeadError())
    r = post_generate(engine, {"instruction": "x"})
    assert r.status_code == 503 and r.json()["error"].startswith("engine failed: ")
    assert r.json()["error"] != "engine failed: "


# --- 4. failure reported as success -------------------------------------------------------------------


@pytest.mark.parametrize("schema", [
    {"$ref": "#"},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]},
])
def test_looping_ref_is_422_not_200_with_empty_text(real_engine, schema):
    engine, llm = real_engine(finish="error")  # what vLLM answered for these
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code == 422 and "no finite instance" in r.json()["error"], r.text
    assert llm.calls == []


def test_recursive_schema_with_a_way_out_passes(real_engine):
    tree = {"type": "object", "properties": {"name": {"type": "string"},
                                             "children": {"type": "array", "items": {"$ref": "#"}}},
            "required": ["name", "children"]}
    engine, llm = real_engine()
    assert post_generate(engine, {"instruction": "x", "json_schema": tree}).status_code == 200


def test_engine_error_finish_is_never_a_200(real_engine):
    engine, _ = real_engine(finish="error")
    with_schema = post_generate(engine, {"instruction": "x", "json_schema": {"type": "object"}})
    assert with_schema.status_code == 422 and "grammar" in with_schema.json()["error"]
    engine, _ = real_engine(finish="error")
    plain = post_generate(engine, {"instruction": "x"})
    assert plain.status_code == 500 and plain.json()["error"].startswith("generation failed")


# --- 5. schema compile time ------------------------------------------------------------------------------


def test_huge_enum_is_refused_quickly(real_engine):
    engine, llm = real_engine()
    schema = {"type": "string", "enum": [f"value {i}" for i in range(100_000)]}
    started = time.perf_counter()
    r = post_generate(engine, {"instruction": "x", "json_schema": schema})
    assert r.status_code in (413, 422), r.text  # 1.3 MB: the body limit or the schema cap
    assert time.perf_counter() - started < 5 and llm.calls == []
    mid = {"type": "string", "enum": [f"value {i}" for i in range(1500)]}  # 25 KB, under the body limit
    r = post_generate(engine, {"instruction": "x", "json_schema": mid})
    assert r.status_code == 422 and "at most 1000" in r.json()["error"]
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 100}
                                             for i in range(400)}}
    r = post_generate(engine, {"instruction": "x", "json_schema": wide})
    assert r.status_code == 422 and "bytes" in r.json()["error"]


def test_grammar_compile_time_is_bounded(tokenizer, monkeypatch):
    import hashlib

    from ie_service.engine.json_schema_guard import GrammarCompileGuard
    from ie_service.request_errors import InvalidJsonSchema

    def burn(seconds: float) -> None:  # CPU work that releases the GIL, like xgrammar's
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            hashlib.sha256(b"x" * (1 << 20)).digest()

    # any CPU used counts as the schema's own (a loaded test machine gives it little)
    monkeypatch.setattr("ie_service.engine.json_schema_guard.CPU_SHARE_OF_OWN_FAULT", 0.0)
    guard = GrammarCompileGuard(tokenizer, 49152, timeout_s=0.2)
    guard._compile = lambda text: burn(2)  # a grammar that compiles for 2 s
    started = time.perf_counter()
    with pytest.raises(InvalidJsonSchema, match="took over 0.2s"):
        asyncio.run(guard.check({"type": "object"}))
    assert time.perf_counter() - started < 1.5
    guard.close()


# --- 6. CLI tracebacks on bad files ----------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str]:
    from ie_service.cli import main

    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err


GOOD_LINE = json.dumps({"doc_id": "d1", "triples": [
    {"head": {"text": "A"}, "relation": "r", "tail": {"text": "B"}}]})


@pytest.mark.parametrize("content,needles", [
    (GOOD_LINE + "\nnot json\n" + GOOD_LINE + "\n", [":2:", "not JSON"]),
    (GOOD_LINE + '\n{"doc_id": "d2", "triples": "many"}\n', [":2:", "triples must be a list"]),
    ('{"doc_id": 1.5, "triples": []}\n', [":1:", "doc_id must be a string"]),
    (GOOD_LINE + '\n{"doc_id": "d3", "triples": [{"head": {"text": 5}, "relation": "r", "tail": {"text": "x"}}]}\n',
     [":2:", "head.text must be a string"]),
    (b"\xff\xfe garbage\n" + GOOD_LINE.encode() + b"\n", [":1:", "not UTF-8"]),
    ('{"doc_id": "d1", "tri', ["no triple records"]),  # only a torn line: not a success with 0 entities
    ("", ["no triple records"]),
    ("[1, 2]\n", [":1:", "expected an object"]),
])
def test_kg_export_bad_files_one_line_exit_2(tmp_path, capsys, content, needles):
    triples = tmp_path / "t.jsonl"
    (triples.write_bytes if isinstance(content, bytes) else triples.write_text)(content)
    code, err = run_cli(capsys, "kg", "export", "--triples", str(triples), "--format", "cypher",
                        "--out", str(tmp_path / "out.json"))
    assert code == 2
    assert_one_line(err, str(triples), *needles)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("name,content,needles", [
    ("d.jsonl", '{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', [":2:", "not JSON"]),
    ("d.jsonl", '{"id": "a", "text": ["not", "a", "string"]}\n', [":1:", "'text' must be a string"]),
    ("d.jsonl", '{"id": {"x": 1}, "text": "t"}\n', [":1:", "'id' must be"]),
    ("d.jsonl", b'{"id": "a", "text": "caf\xe9"}\n', [":1:", "not UTF-8"]),
    ("d.jsonl", "\n\n", ["no documents"]),
    ("d.txt", b"\xc3\x28 bad", [":1:", "not UTF-8"]),
])
def test_kg_build_bad_inputs_one_line_exit_2(tmp_path, capsys, name, content, needles):
    docs = tmp_path / name
    (docs.write_bytes if isinstance(content, bytes) else docs.write_text)(content)
    code, err = run_cli(capsys, "kg", "build", "--input", str(docs), "--relations", "r",
                        "--out", str(tmp_path / "o.jsonl"), "--url", "http://127.0.0.1:9")
    assert code == 2
    assert_one_line(err, str(docs), *needles)


def test_kg_build_bad_schema_file(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "ok"}\n')
    (tmp_path / "schema.json").write_text('["founded by",\n  oops]')
    code, err = run_cli(capsys, "kg", "build", "--input", str(tmp_path / "d.jsonl"), "--schema",
                        str(tmp_path / "schema.json"), "--out", str(tmp_path / "o.jsonl"), "--url", "http://x")
    assert code == 2
    assert_one_line(err, "schema.json:2:", "not JSON")


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(64, 64, generator=g), "b": torch.randn(64, generator=g)},
              str(folder / "model.safetensors"))
    # a complete tiny config: should anything load it as a model, it stays small (a bare
    # {"model_type": "llama"} means LLaMA-7B defaults, 26 GB in float32)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "vocab_size": 128, "torch_dtype": "float32"}))
    return folder


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage,needles", [
    (lambda f: (f / "model.safetensors").write_bytes(bytes(range(256)) * 64), ["not a safetensors file"]),
    (lambda f: truncate(f / "model.safetensors"), ["truncated"]),
    (lambda f: (f / "model.safetensors").write_bytes(b"\x05"), ["too short"]),
    (lambda f: ((f / "model.safetensors").unlink(), (f / "pytorch_model.bin").write_bytes(b"random junk" * 50)),
     ["unreadable PyTorch weights file"]),
])
@pytest.mark.parametrize("op", ["recover", "make-diff"])
def test_weights_bad_checkpoints_one_line_exit_2(tmp_path, capsys, damage, needles, op):
    base = tiny_checkpoint(tmp_path / "base")
    other = tiny_checkpoint(tmp_path / "other", seed=1)
    damage(other)
    flag = "--diff" if op == "recover" else "--tuned"
    code, err = run_cli(capsys, "weights", op, "--base", str(base), flag, str(other), "--out", str(tmp_path / "o"))
    assert code == 2
    assert_one_line(err, str(other), *needles)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.partial-*"))


@pytest.mark.parametrize("damage,needles", [
    (lambda a: (a / "adapter_config.json").write_text("{not json"), ["adapter_config.json", "not a JSON"]),
    (lambda a: (a / "adapter_config.json").write_text('{"r": 4}'), ["no peft_type"]),
    (lambda a: (a / "adapter_model.safetensors").write_bytes(b"\x00" * 7), ["adapter_model.safetensors", "too short"]),
    (lambda a: truncate(a / "adapter_model.safetensors"), ["adapter_model.safetensors", "truncated"]),
    (lambda a: (a / "adapter_model.safetensors").unlink(), ["has no adapter_model"]),
])
def test_merge_lora_bad_adapters_one_line_exit_2(tmp_path, capsys, damage, needles):
    base = tiny_checkpoint(tmp_path / "base")
    lora = tiny_checkpoint(tmp_path / "lora", seed=2)
    (lora / "model.safetensors").rename(lora / "adapter_model.safetensors")
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    damage(lora)
    code, err = run_cli(capsys, "weights", "merge-lora", "--base", str(base), "--lora", str(lora),
                        "--out", str(tmp_path / "m"))
    assert code == 2
    assert_one_line(err, *needles)


def test_merge_lora_truncated_base_one_line_exit_2(tmp_path, capsys):
    base = tiny_checkpoint(tmp_path / "base")
    truncate(base / "model.safetensors")
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    tiny_checkpoint(tmp_path / "x")
    (tmp_path / "x" / "model.safetensors").rename(lora / "adapter_model.safetensors")
    code, err = run_cli(capsys, "weights", "merge-lora", "--base", str(base), "--lora", str(lora),
                        "--out", str(tmp_path / "m"))
    assert code == 2
    assert_one_line(err, str(base / "model.safetensors"), "truncated")


# --- 7. partial output left behind on SIGTERM ------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_removes_partial_output(tmp_path, sig):
    # the child starts with the signals as under a terminal: a run under nohup (SIGHUP) or in a
    # shell's background (SIGINT) hands them ignored, which atomic_output keeps, rightly
    script = textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from ie_service.models.weights.shards import atomic_output
        with atomic_output(sys.argv[1]) as tmp:
            (tmp / "model.safetensors").write_bytes(b"x" * 1000)
            print(tmp, flush=True)
            time.sleep(60)
    """)
    out = tmp_path / "merged"
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    partial = Path(proc.stdout.readline().strip())
    assert partial.name == f".merged.partial-{proc.pid}" and partial.is_dir()
    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    assert code != 0
    assert not partial.exists() and not out.exists()
    assert list(tmp_path.iterdir()) == []


# --- 8. Neo4j CSV and the other exporters ------------------------------------------------------------------


def ent(text, type_=None):
    return {"text": text, "type": type_, "start": None, "end": None, "grounded": False}


@pytest.fixture()
def nasty_graph(tmp_path):
    lines = [{"doc_id": "d1", "triples": [
        {"head": ent("=HYPERLINK(\"http://evil\",\"x\")", "org\n"), "relation": "founded\nby",
         "tail": ent("+1 555", "person")},
        {"head": ent("@SUM(A1:A9)"), "relation": "knows", "tail": ent("-2+3")},
        {"head": ent("Bill\nGates", "person\r\n"), "relation": "knows", "tail": ent("   ")},
        {"head": ent("Bill Gates"), "relation": "cmd", "tail": ent("\tTAB")},
    ]}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    from ie_service.kg.graph import load_graph

    return load_graph(path)


def test_neo4j_csv_has_no_formulas_or_raw_newlines(nasty_graph, tmp_path):
    import csv

    from ie_service.kg.export import export

    files = export(nasty_graph, "neo4j-csv", tmp_path / "neo")
    for f in files:
        raw = f.read_text()
        rows = list(csv.reader(f.open()))
        assert len(raw.splitlines()) == len(rows)  # no record spans two lines
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (f.name, cell)
    entities = {row[1] for row in list(csv.reader((tmp_path / "neo" / "entities.csv").open()))[1:]}
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in entities and "'+1 555" in entities
    assert "Bill Gates" in entities and "" not in entities and "'TAB" not in entities


def test_names_and_types_normalised_once_for_every_exporter(nasty_graph, tmp_path):
    from rdflib import RDF, RDFS
    from rdflib import Graph as RDFGraph

    from ie_service.kg.export import export, to_cypher

    assert nasty_graph.skipped == 1  # the whitespace-only tail: no entity with an empty name
    names = {e.name for e in nasty_graph.entities.values()}
    assert "Bill Gates" in names and "TAB" in names and all(n.strip() == n and n for n in names)
    types = {e.type for e in nasty_graph.entities.values()} - {None}
    assert types == {"org", "person"}
    assert {e.relation for e in nasty_graph.edges} == {"founded by", "knows", "cmd"}
    rows = to_cypher(nasty_graph)[1]["parameters"]["rows"]
    assert {r["type"] for r in rows} - {None} == {"org", "person"}
    export(nasty_graph, "turtle", tmp_path / "kg.ttl")
    rdf = RDFGraph().parse(tmp_path / "kg.ttl", format="turtle")
    assert {str(o) for o in rdf.objects(None, RDFS.label)} >= {"Bill Gates", "founded by"}
    assert {str(o).rsplit("/", 1)[-1] for o in rdf.objects(None, RDF.type)} >= {"org", "person"}
