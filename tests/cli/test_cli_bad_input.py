"""Every bad command-line input is one ``error:`` line and exit 2, before any work (issue 31,
"What to build" 7): a table over the subcommands, with the hostile cases of the probe and
their neighbours.

Each case runs ``ie-service`` in this process with vLLM, uvicorn and torch made
unimportable (a case that would start an engine or load a model fails), beside a loopback
service that records what it was sent (a case that needs no service must send nothing). A
case asserts its exit code, exactly one ``error:`` line on stderr, no traceback and no
``internal error``, and a few seconds at most."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tiny_http import tiny_server

from ie_service.api.settings import API_KEYS_ENV, ServiceSettings
from ie_service.cli import main
from ie_service.errors import UserInputError

DEEP = 50_000
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
          "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
          "num_key_value_heads": 4, "vocab_size": 1000}
UNIMPORTABLE = ("vllm", "uvicorn", "torch")  # an engine, a server, a model: none is needed to refuse


def service(method: str, path: str, body) -> tuple[int, object]:
    """A service that answers /health and refuses a text over 2 MB as the real one does (413)."""
    if path == "/health":
        return 200, {"status": "ok"}
    if isinstance(body, dict) and len(body.get("text", "")) > 2 * 1024 * 1024:
        return 413, {"detail": "request body over 2097152 bytes"}
    return 500, {"detail": "this test service extracts nothing"}


@pytest.fixture(scope="module")
def svc():
    with tiny_server(service) as recorder:
        yield recorder


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The hostile files, made once."""
    root = tmp_path_factory.mktemp("bad")
    deep = "[" * DEEP + "]" * DEEP
    out: dict[str, str] = {}

    def write(name: str, data: str | bytes) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        out[name] = str(path)
        return str(path)

    write("deep.jsonl", json.dumps({"id": "a", "text": "x"})[:-1] + ', "deep": ' + deep + "}\n")
    write("deep.json", deep)
    write("dups.JSONL", "".join(json.dumps({"id": i, "text": f"text {n}"}) + "\n" for n, i in enumerate("aba")))
    write("docs.ndjson", json.dumps({"id": "a", "text": "Org was founded."}) + "\n")
    write("texts.txt", "Barack Obama met Angela Merkel.\n")
    write("texts.csv", "id,text\n")
    write("big.txt", "word " * (30 * 1024 * 1024 // 5) + "\n")
    write("corrupt-middle.jsonl", json.dumps({"id": "1", "entities": []}) + '\n{"id": "2", "ent\n'
          + json.dumps({"id": "3", "entities": []}) + "\n")
    write("binary.bin", bytes(range(256)) * 8)
    write("empty.jsonl", "")
    write("gold.jsonl", json.dumps({"id": "g0", "text": "Org is big.", "entities": [{"text": "Org", "type": "org"}]}) + "\n")
    write("from.jsonl", json.dumps({"text": "Org is big.", "entities": [{"text": "Org", "type": "org"}]}) + "\n")
    for name, config in (("list", "[]"), ("empty", "{}"), ("deep", deep)):
        write(f"cfg-{name}/config.json", config)
    write("random-st/config.json", json.dumps(CONFIG))
    write("random-st/model.safetensors", bytes(range(256)) * 64)
    write("huge-header/config.json", json.dumps(CONFIG))
    write("huge-header/model.safetensors", (2**62).to_bytes(8, "little") + b"{}" + bytes(100))
    (root / "empty-dir").mkdir()
    out["empty-dir"] = str(root / "empty-dir")
    (root / "a-dir").mkdir()
    out["a-dir"] = str(root / "a-dir")
    out["root"] = str(root)
    return out


@dataclass
class Case:
    name: str
    argv: Callable[[dict[str, str], str], list[str]]  # (files, service url) → arguments
    code: int
    needle: str  # in the error line
    env: dict[str, str] | None = None
    stdin: bytes | None = None
    posts: bool = False  # the case may send a request (the service refuses the text)


NER = ["extract", "--task", "ner", "--schema", "person"]


def url(u: str) -> list[str]:
    return ["--url", u]


CASES = [
    # extract: values, conflicts, outputs, inputs
    Case("extract --temperature nan", lambda f, u: [*NER, "--temperature", "nan", *url(u), "x"], 2, "--temperature"),
    Case("extract --temperature inf", lambda f, u: [*NER, "--temperature", "inf", *url(u), "x"], 2, "--temperature"),
    Case("extract --temperature -1", lambda f, u: [*NER, "--temperature", "-1", *url(u), "x"], 2, "--temperature"),
    Case("extract --max-tokens 0", lambda f, u: [*NER, "--max-tokens", "0", *url(u), "x"], 2, "--max-tokens"),
    Case("extract --concurrency 0", lambda f, u: [*NER, "--concurrency", "0", *url(u), "x"], 2, "--concurrency"),
    Case("extract --model X --url U", lambda f, u: [*NER, "--model", "X", *url(u), "x"], 2, "--model"),
    Case("extract --dtype with --url", lambda f, u: [*NER, "--max-model-len", "4096", *url(u), "x"], 2,
         "--max-model-len"),
    Case("extract --api-key blank", lambda f, u: [*NER, "--api-key", " ", *url(u), "x"], 2, "--api-key"),
    Case("extract -o /dev/full", lambda f, u: [*NER, "-i", f["texts.txt"], "-o", "/dev/full", *url(u)], 2,
         "not a regular file"),
    Case("extract -o a folder", lambda f, u: [*NER, "-i", f["texts.txt"], "-o", f["a-dir"], *url(u)], 2,
         "is a folder"),
    Case("extract -o a binary file", lambda f, u: [*NER, "-i", f["texts.txt"], "-o", f["binary.bin"], *url(u)], 2,
         "binary.bin:1: not"),
    Case("extract -o /proc/version", lambda f, u: [*NER, "-i", f["texts.txt"], "-o", "/proc/version", *url(u)], 2,
         "/proc/version:1: not JSON"),
    Case("extract -o with a corrupt middle line",
         lambda f, u: [*NER, "-i", f["texts.txt"], "-o", f["corrupt-middle.jsonl"], *url(u)], 2,
         "corrupt-middle.jsonl:2: not JSON"),
    Case("extract -i 50,000-deep JSON", lambda f, u: [*NER, "-i", f["deep.jsonl"], *url(u)], 2,
         "deep.jsonl:1: not JSON (nested too deeply)"),
    Case("extract --schema 50,000-deep file", lambda f, u: [*NER[:3], "--schema", f["deep.json"], *url(u), "x"], 2,
         "nested too deeply"),
    Case("extract -i duplicate ids", lambda f, u: [*NER, "-i", f["dups.JSONL"], *url(u)], 2, "text id 'a' occurs twice"),
    Case("extract -i .csv", lambda f, u: [*NER, "-i", f["texts.csv"], *url(u)], 2, ".jsonl or .ndjson"),
    Case("extract a 30 MB line", lambda f, u: [*NER, "-i", f["big.txt"], *url(u)], 2,
         "a rerun fails the same way", posts=True),
    Case("extract --interactive binary stdin", lambda f, u: [*NER, "--interactive", *url(u)], 2, "not UTF-8",
         stdin=b"\xff\xfe\x00bad\n"),
    # eval
    Case("eval --dataset 50,000-deep JSON", lambda f, u: ["eval", "--dataset", f["deep.jsonl"], "--task", "ner",
                                                          *url(u), "--out-dir", f["root"]], 2, "nested too deeply"),
    Case("eval --dataset 50,000-deep .json", lambda f, u: ["eval", "--dataset", f["deep.json"], "--task", "ner",
                                                           *url(u), "--out-dir", f["root"]], 2, "nested too deeply"),
    Case("eval --predictions /dev/full", lambda f, u: ["eval", "--dataset", f["gold.jsonl"], "--task", "ner", *url(u),
                                                       "--predictions", "/dev/full"], 2, "not a regular file"),
    Case("eval --predictions corrupt middle", lambda f, u: ["eval", "--dataset", f["gold.jsonl"], "--task", "ner",
                                                            *url(u), "--predictions", f["corrupt-middle.jsonl"]], 2,
         "corrupt-middle.jsonl:2: not JSON"),
    Case("eval --model X --url U", lambda f, u: ["eval", "--dataset", f["gold.jsonl"], "--task", "ner", "--model", "X",
                                                 *url(u), "--out-dir", f["root"]], 2, "--model"),
    Case("eval --concurrency 0", lambda f, u: ["eval", "--dataset", f["gold.jsonl"], "--task", "ner",
                                               "--concurrency", "0", *url(u)], 2, "--concurrency"),
    # kg
    Case("kg build --out /dev/full", lambda f, u: ["kg", "build", "--input", f["docs.ndjson"], "--relations", "r",
                                                   "--out", "/dev/full", *url(u)], 2, "not a regular file"),
    Case("kg build duplicate ids", lambda f, u: ["kg", "build", "--input", f["dups.JSONL"], "--relations", "r",
                                                 "--out", f["root"] + "/t.jsonl", *url(u)], 2,
         "document id 'a' occurs twice"),
    Case("kg build 50,000-deep JSON", lambda f, u: ["kg", "build", "--input", f["deep.jsonl"], "--relations", "r",
                                                    "--out", f["root"] + "/t.jsonl", *url(u)], 2, "nested too deeply"),
    Case("kg build --model X --url U", lambda f, u: ["kg", "build", "--input", f["docs.ndjson"], "--relations", "r",
                                                     "--out", f["root"] + "/t.jsonl", "--model", "X", *url(u)], 2,
         "--model"),
    Case("kg export 50,000-deep JSON", lambda f, u: ["kg", "export", "--triples", f["deep.jsonl"], "--format", "nt",
                                                     "--out", f["root"] + "/kg.nt"], 2, "nested too deeply"),
    # inspect-model
    Case("inspect-model config.json []", lambda f, u: ["inspect-model", f["cfg-list/config.json"][:-12]], 2,
         "expected a JSON object"),
    Case("inspect-model config.json {}", lambda f, u: ["inspect-model", f["cfg-empty/config.json"][:-12]], 2,
         "not a model config"),
    Case("inspect-model config.json 50,000 deep", lambda f, u: ["inspect-model", f["cfg-deep/config.json"][:-12]], 2,
         "nested too deeply"),
    Case("inspect-model --dtype banana", lambda f, u: ["inspect-model", f["random-st/config.json"][:-12],
                                                       "--dtype", "banana"], 2, "--dtype"),
    Case("inspect-model -tp 0", lambda f, u: ["inspect-model", f["random-st/config.json"][:-12], "-tp", "0"], 2,
         "-tp"),
    Case("inspect-model random-byte safetensors", lambda f, u: ["inspect-model", f["random-st/config.json"][:-12]], 2,
         "not a safetensors file"),
    Case("inspect-model 2^62 header length", lambda f, u: ["inspect-model", f["huge-header/config.json"][:-12]], 2,
         "header of 4611686018427387904 bytes"),
    Case("inspect-model no such folder", lambda f, u: ["inspect-model", f["root"] + "/nope"], 2, "not a folder"),
    # serve: refused in preflight, before vLLM is imported
    Case("serve config.json []", lambda f, u: ["serve", "--model", f["cfg-list/config.json"][:-12]], 2,
         "expected a JSON object"),
    Case("serve config.json {}", lambda f, u: ["serve", "--model", f["cfg-empty/config.json"][:-12]], 2,
         "not a model config"),
    Case("serve random-byte safetensors", lambda f, u: ["serve", "--model", f["random-st/config.json"][:-12]], 2,
         "not a safetensors file"),
    Case("serve --quantization bogus", lambda f, u: ["serve", "--quantization", "bogus"], 2,
         "--quantization 'bogus'"),
    Case("serve -tp 0", lambda f, u: ["serve", "-tp", "0"], 2, "--tensor-parallel-size"),
    Case("serve --dtype banana", lambda f, u: ["serve", "--dtype", "banana"], 2, "--dtype"),
    Case("serve --api-key ' '", lambda f, u: ["serve", "--api-key", " "], 2, "--api-key"),
    Case("serve --api-key ',,'", lambda f, u: ["serve", "--api-key", ",,"], 2, "comma"),
    Case("serve --api-key ' k'", lambda f, u: ["serve", "--api-key", " k"], 2, "spaces"),
    *(Case(f"serve ${API_KEYS_ENV}={raw!r}", lambda f, u: ["serve"], 2, f"${API_KEYS_ENV}: entry",
           env={API_KEYS_ENV: raw}) for raw in (" ", ",,", " , ", "k1,,k2", "k1,")),
    # weights
    Case("weights md5 of an empty folder", lambda f, u: ["weights", "md5", f["empty-dir"]], 2, "no files"),
    Case("weights quantize --samples 0", lambda f, u: ["weights", "quantize", f["random-st/config.json"][:-12],
                                                       "--out", f["root"] + "/q", "--samples", "0"], 2, "--samples"),
    # train: values before files, files before torch
    Case("train data --variants 0", lambda f, u: ["train", "data", "--out", f["root"] + "/e.jsonl",
                                                  "--variants", "0"], 2, "--variants"),
    Case("train run --max-minutes 0", lambda f, u: ["train", "run", "--from", f["from.jsonl"], "--out",
                                                    f["root"] + "/run", "--max-minutes", "0"], 2, "--max-minutes"),
    Case("train run --eval-limit 0", lambda f, u: ["train", "run", "--from", f["from.jsonl"], "--out",
                                                   f["root"] + "/run", "--eval-limit", "0"], 2, "--eval-limit"),
    Case("train fit --rank 0 (gold examples)", lambda f, u: ["train", "fit", "--examples", f["gold.jsonl"], "--out",
                                                             f["root"] + "/fit", "--rank", "0"], 2, "--rank"),
    Case("train fit --lr -1 (binary examples)", lambda f, u: ["train", "fit", "--examples", f["binary.bin"], "--out",
                                                              f["root"] + "/fit", "--lr", "-1"], 2, "--lr"),
    Case("train fit --lr nan", lambda f, u: ["train", "fit", "--examples", f["gold.jsonl"], "--out",
                                             f["root"] + "/fit", "--lr", "nan"], 2, "--lr"),
    Case("train fit gold-format examples", lambda f, u: ["train", "fit", "--examples", f["gold.jsonl"], "--out",
                                                         f["root"] + "/fit"], 2, "gold.jsonl:1: not a training example"),
    Case("train fit binary examples", lambda f, u: ["train", "fit", "--examples", f["binary.bin"], "--out",
                                                    f["root"] + "/fit"], 2, "binary.bin"),
    Case("train fit empty examples", lambda f, u: ["train", "fit", "--examples", f["empty.jsonl"], "--out",
                                                   f["root"] + "/fit"], 2, "no examples"),
    Case("train fit corrupt examples", lambda f, u: ["train", "fit", "--examples", f["corrupt-middle.jsonl"], "--out",
                                                     f["root"] + "/fit"], 2, "corrupt-middle.jsonl:1: not a training"),
]

ERROR_LINE = re.compile(r"(^|: )error: ")


@pytest.fixture
def sealed(monkeypatch):
    """No engine, server or model can be imported; no service URL or keys from the caller.
    What ``main`` sets up for logging (handlers bound to this test's captured stderr,
    ``serve``'s level for ``ie_service``) goes with the test."""
    for name in UNIMPORTABLE:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("IE_SERVICE_URL", API_KEYS_ENV):
        monkeypatch.delenv(name, raising=False)
    loggers = [logging.getLogger(name) for name in ("", "ie_service", "ie_service.access")]
    saved = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_before_any_work(case, files, svc, sealed, monkeypatch, capsys):
    for key, value in (case.env or {}).items():
        monkeypatch.setenv(key, value)
    if case.stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8"))
    before = len(svc.requests)
    started = time.monotonic()
    try:
        code = main(case.argv(files, svc.url))
    except SystemExit as exit_:  # argparse's refusal
        code = exit_.code
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ERROR_LINE.search(line)]
    assert code == case.code, err[-3000:]
    assert len(errors) == 1 and case.needle in errors[0], err[-3000:]
    assert "internal error" not in err and "Traceback" not in err, err[-3000:]
    posts = [r for r in svc.requests[before:] if r[0] == "POST"]
    assert case.posts or not posts, posts
    assert seconds < 30, f"{seconds:.1f} s"


# ---- the keys, as the service reads them


@pytest.mark.parametrize("raw", [" ", ",,", " , ", "a,", ",a", "a, ,b"])
def test_blank_env_keys_are_refused(raw, monkeypatch):
    monkeypatch.setenv(API_KEYS_ENV, raw)
    with pytest.raises(UserInputError, match="blank"):
        ServiceSettings.keys_from_env()


def test_env_keys_unset_or_empty_are_none_and_others_are_trimmed(monkeypatch):
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    assert ServiceSettings.keys_from_env() == []
    monkeypatch.setenv(API_KEYS_ENV, "")  # docker-compose's "${IE_SERVICE_API_KEYS:-}"
    assert ServiceSettings.keys_from_env() == []
    monkeypatch.setenv(API_KEYS_ENV, "k1, k2")
    assert ServiceSettings.keys_from_env() == ["k1", "k2"]


@pytest.mark.parametrize("key", ["", " ", " k", "a,b"])
def test_settings_refuse_an_unusable_key(key):
    with pytest.raises(ValueError, match="API key"):
        ServiceSettings(api_keys=["good", key])


def test_a_write_that_fails_is_one_line_exit_1(tmp_path, capsys):
    """A runtime ``OSError`` (disk full) is exit 1 (failures.py: a runtime failure), one line."""
    import argparse

    from ie_service.cli import failures

    def command(args):
        raise OSError(28, "No space left on device", str(tmp_path / "out.jsonl"))

    assert failures.run(command, argparse.Namespace(), lambda m: None) == 1
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'out.jsonl'}: No space left on device\n"


def test_quantization_methods_are_vllms_own():
    from ie_service.engine.quantization_methods import quantization_methods

    methods = quantization_methods()
    assert methods is None or {"gptq", "awq", "fp8"} <= set(methods)
