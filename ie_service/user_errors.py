"""Errors the user fixes (a bad file, an argument that cannot work). Library code raises
them; the command line prints one line, ``error: ...``, and exits with code 2. A
:class:`RuntimeFailure` (a service that cannot be reached, documents that failed) is one
line and exit code 1."""

from __future__ import annotations

from pathlib import Path

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UserInputError(Exception):
    """Base of every error the CLI reports as one line with exit code 2."""


class RuntimeFailure(Exception):
    """The input was fine but the work failed (unreachable service, failed documents): the
    CLI prints one line and exits with code 1."""


class BadInputFile(UserInputError, ValueError):
    """A file that cannot be used: ``PATH[:LINE]: what is wrong``."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (library messages can span many lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_json_file(path: str | Path):
    """The JSON value in a file; :class:`BadInputFile` (with the line) when it is not."""
    import json

    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise BadInputFile(path, exc.strerror or one_line(exc)) from None
    except UnicodeDecodeError as exc:
        raise BadInputFile(path, f"not UTF-8 (byte {exc.start})", line=_line_of(exc.object, exc.start)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputFile(path, f"not JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
