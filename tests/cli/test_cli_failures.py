"""The one place that turns a command's failure into one ``error:`` line and an exit code
(ie_service/cli/failures.py): commands added later get it without code of their own."""

import argparse

import httpx
import pytest
from pydantic import BaseModel

from ie_service.cli import failures
from ie_service.errors import BadInputFile, RuntimeFailure


class Strict(BaseModel):
    n: int


def raising(exc):
    def command(args):
        raise exc
    return command


@pytest.mark.parametrize("exc,code,needle", [
    (BadInputFile("/d.jsonl", "not JSON", line=3), 2, "error: /d.jsonl:3: not JSON"),
    (RuntimeFailure("2 documents failed"), 1, "error: 2 documents failed"),
    (FileNotFoundError(2, "No such file or directory", "/x/y"), 2, "error: /x/y: No such file or directory"),
    (IsADirectoryError(21, "Is a directory", "/tmp"), 2, "error: /tmp: Is a directory"),
    (httpx.ConnectError("refused", request=httpx.Request("GET", "http://127.0.0.1:9/health")), 1,
     "error: cannot reach http://127.0.0.1:9/health"),
    (OSError(28, "No space left on device", "/data/out.jsonl"), 1, "error: /data/out.jsonl: No space left on device"),
    (RecursionError("maximum recursion depth exceeded"), 2, "error: an input is nested too deeply to read"),
    (KeyboardInterrupt(), 130, "error: interrupted"),
    (ZeroDivisionError("division by zero"), 1, "error: internal error: ZeroDivisionError: division by zero"),
])
def test_each_failure_is_one_line_and_its_exit_code(exc, code, needle, capsys):
    assert failures.run(raising(exc), argparse.Namespace(), lambda m: None) == code
    err = capsys.readouterr().err
    assert err.startswith(needle) and err.count("\n") == 1, err


def test_a_validation_error_names_the_field(capsys):
    def command(args):
        Strict(n="many")
    assert failures.run(command, argparse.Namespace(), lambda m: None) == 2
    assert capsys.readouterr().err.startswith("error: n: Input should be a valid integer")


def test_the_traceback_is_there_for_who_asks(monkeypatch):
    monkeypatch.setenv(failures.TRACEBACK_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        failures.run(raising(ZeroDivisionError("x")), argparse.Namespace(), lambda m: None)


def test_a_usage_error_goes_to_the_commands_parser():
    from ie_service.cli.common import UsageError

    parser = argparse.ArgumentParser(prog="ie-service thing")
    with pytest.raises(SystemExit) as exit_:
        failures.run(raising(UsageError("--a and --b do not fit")), argparse.Namespace(), parser.error)
    assert exit_.value.code == 2
