"""argparse ``type=`` checkers: a bad value is the parser's one-line error and exit 2,
before a command does any work. Commands of every module use these."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer ≥ ``minimum`` (``--limit``, ``--concurrency``: ``int_at_least(1)``)."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    check.__name__ = f"integer ≥ {minimum}"
    return check


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def _number(text: str, ok: Callable[[float], bool], rule: str) -> float:
    """``text`` as a float for which ``ok`` holds (NaN fails every comparison), else an
    argparse error saying ``rule``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds)."""
    return _number(text, lambda v: 0 < v < math.inf, "a number above 0")


def non_negative_float(text: str) -> float:
    """A finite number ≥ 0 (a sampling temperature; NaN and infinity are refused)."""
    return _number(text, lambda v: 0 <= v < math.inf, "a finite number of at least 0")


def unit_float(text: str) -> float:
    """A number in [0, 1] (a confidence threshold)."""
    return _number(text, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")


def port(text: str) -> int:
    """A TCP port 1–65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {value}")
    return value


def non_empty(text: str) -> str:
    """A value that is not empty or only spaces (``--api-key ""`` would turn access control off)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def api_key(text: str) -> str:
    """An API key (``serve --api-key``, a client's ``--api-key``): not blank, no spaces around
    it, no comma (:func:`~ie_service.api.settings.key_problem`)."""
    from ..api.settings import key_problem

    problem = key_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def http_url(text: str) -> str:
    """``http(s)://host[:port][/path]``, without the trailing slash."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {text!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected http://HOST[:PORT], got {text!r}")
    return text.rstrip("/")


def existing_file(text: str) -> str:
    """A path to a file that exists (not a folder)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def existing_dir(text: str) -> str:
    """A path to a folder that exists."""
    path = Path(text)
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: is a file, expected a folder")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return text


def output_file(text: str) -> str:
    """A file to write: not a folder, in a folder that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
    return text


def output_file_new_dir(text: str) -> str:
    """A file to write whose folder is made if missing (``eval --report D/r.json`` beside
    ``--out-dir D``): not a folder, and no part of its path a file."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file")
    output_dir(str(path.parent))
    return text


def output_dir(text: str) -> str:
    """A folder to write into (made if missing): not an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file, expected a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            break
    return text


def resumable_output(text: str) -> str:
    """A JSON lines file that a command appends to and resumes from (``extract -o``,
    ``kg build --out``, ``eval --predictions``): a regular file or a new one (its folder made
    if missing); a device, pipe or folder is refused (``/dev/full`` would fail on the first
    record, ``/dev/null`` would lose every one)."""
    output_file_new_dir(text)
    path = Path(text)
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a regular file (a JSON lines file is appended to "
                                         "and read back to resume)")
    return text
