"""One error base (ie_service/errors.py): every ServiceError in the package is answered with its
own status, body and Retry-After by the HTTP handler, and with its exit code and one
``error:`` line by the command line; routes and commands do not translate."""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import ie_service
from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.errors import RESPONSES
from ie_service.cli import failures
from ie_service.cli.common import UsageError
from ie_service.errors import BadInputFile, RuntimeFailure, ServiceError, UserInputError

# what each answered before the one base (the table in api/errors.py): kept as it was
STATUS_BEFORE = {"TooManyPrompts": 413, "InvalidJsonSchema": 422, "InvalidRequest": 422, "TooManyLabels": 422,
                 "UnknownAdapter": 422, "SchemaError": 422, "TemplateError": 422, "PromptTooLong": 400,
                 "QueueFull": 429, "GenerationFailed": 500, "EngineUnavailable": 503,
                 "EngineRestarting": 503, "GrammarBusy": 503, "ClientDisconnected": 499}
RETRY_BEFORE = {"QueueFull": "1", "EngineUnavailable": "5", "EngineRestarting": "5", "GrammarBusy": "5"}


def _base_names(node: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr for b in node.bases if isinstance(b, ast.Name | ast.Attribute)}


def declared_in_source() -> dict[str, str]:
    """``module.Class`` → module of every class in the package's source that derives from
    ServiceError (through its bases' names), found without importing anything."""
    root = Path(ie_service.__file__).parent
    classes = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes += [(module, node.name, _base_names(node)) for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    names, found = {"ServiceError"}, {}
    while True:
        more = {f"{m}.{n}": m for m, n, bases in classes if bases & names and f"{m}.{n}" not in found}
        if not more:
            return found
        found |= more
        names |= {key.rsplit(".", 1)[1] for key in more}


def service_errors() -> list[type[ServiceError]]:
    """Every ServiceError subclass of the package (its modules imported), the base too."""
    for module in set(declared_in_source().values()):
        importlib.import_module(module)
    seen, todo = [], [ServiceError]
    while todo:
        cls = todo.pop()
        if cls not in seen and cls.__module__.startswith("ie_service."):
            seen.append(cls)
            todo += cls.__subclasses__()
    return sorted(seen, key=lambda c: c.__name__)


ERRORS = service_errors()


def make(cls: type[ServiceError]) -> ServiceError:
    return cls("in.json", "what went wrong") if issubclass(cls, BadInputFile) else cls("what went wrong")


def test_every_service_error_in_the_source_is_found():
    assert {f"{c.__module__}.{c.__name__}" for c in ERRORS} == {"ie_service.errors.ServiceError",
                                                                 *declared_in_source()}
    assert len(ERRORS) > 30


def test_statuses_exit_codes_and_retries_are_as_before():
    by_name = {c.__name__: c for c in ERRORS}
    assert {name: by_name[name].status for name in STATUS_BEFORE} == STATUS_BEFORE
    for cls in ERRORS:
        assert cls.retry_after is None or cls.status in (429, 503), cls
        assert (cls.status != 503) or cls.retry_after, f"{cls.__name__}: every 503 says when to come back"
        assert cls.status in RESPONSES, f"{cls.__name__}: {cls.status} is not in the OpenAPI spec"
        if issubclass(cls, UserInputError):
            assert cls.exit_code == 2, cls
        if issubclass(cls, RuntimeFailure):
            assert cls.exit_code == 1, cls


@pytest.fixture(scope="module")
def client():
    engine = ScriptedEngine()
    engine.failure = None

    async def fail(*args, **kwargs):
        raise engine.failure

    engine.generate = fail
    with TestClient(create_app(lambda: engine)) as c:
        yield c, engine


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_the_http_handler_answers_each_with_its_status_body_and_retry_after(client, cls):
    c, engine = client
    engine.failure = exc = make(cls)
    for path, body in (("/generate", {"instruction": "x"}), ("/extract/ner", {"text": "x", "schema": ["a"]})):
        r = c.post(path, json=body)
        assert r.status_code == cls.status, (path, r.text)
        assert r.json() == {"error": str(exc)}
        assert r.headers.get("retry-after") == (None if cls.retry_after is None else f"{cls.retry_after:g}")
        assert r.headers.get("retry-after") == RETRY_BEFORE.get(cls.__name__, r.headers.get("retry-after"))


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_the_command_line_reports_each_as_one_line_and_its_exit_code(cls, capsys):
    exc = make(cls)

    def command(args):
        raise exc

    parser = argparse.ArgumentParser(prog="ie-service thing")
    if issubclass(cls, UsageError):  # the command's parser reports it: usage and one line
        with pytest.raises(SystemExit) as exit_:
            failures.run(command, argparse.Namespace(), parser.error)
        assert exit_.value.code == cls.exit_code
        assert capsys.readouterr().err.endswith(f"ie-service thing: error: {exc}\n")
        return
    assert failures.run(command, argparse.Namespace(), parser.error) == cls.exit_code
    assert capsys.readouterr().err == f"error: {exc}\n"


def test_unlisted_exception_is_500_without_details():
    engine = ScriptedEngine()

    async def fail(*args, **kwargs):
        raise KeyError("secret")

    engine.generate = fail
    with TestClient(create_app(lambda: engine), raise_server_exceptions=False) as client:
        r = client.post("/generate", json={"instruction": "x"})
    assert r.status_code == 500 and r.json() == {"error": "internal error: KeyError"}


def test_the_table_in_the_modules_docstring_is_the_classes():
    import ie_service.errors as errors

    rows = [line.split() for line in errors.__doc__.splitlines() if line[:1].isupper() and line.split()[0] in
            {c.__name__ for c in ERRORS}]
    assert len(rows) == 12
    for name, status, exit_code, *rest in rows:
        cls = getattr(errors, name)
        retry = float(rest[0]) if rest[1:2] == ["s"] else None
        assert (cls.status, cls.exit_code, cls.retry_after) == (int(status), int(exit_code), retry), name
