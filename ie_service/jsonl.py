"""JSON lines files that tools append to and resume from, without silent data loss: the one
writer of ``extract -o``, ``kg build --out`` and ``eval --predictions``.

A record is written as one ``json + "\\n"``; a process killed mid-write leaves a *cut* last
line: no newline after it, maybe not even whole UTF-8. Readers skip such a line (counted in
:attr:`JsonLines.cut`) and :func:`open_for_append` moves it to ``FILE.cut`` before
appending, so new records always start on a fresh line and the cut record is redone. Any
other line that is not a JSON object is an error naming the file and line
(:class:`~ie_service.errors.BadInputFile`), and the file is left as it is. Input ids
must be unique (:func:`check_unique`): a resume skips an id already written. JSON nested
too deeply to parse is bad JSON like any other (:func:`loads`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .errors import BadInputFile, UserInputError

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".ndjson")


def is_jsonl_name(path: str | Path) -> bool:
    """``.jsonl`` / ``.ndjson`` in any case."""
    return Path(path).suffix.lower() in SUFFIXES


def looks_like_json_lines(data: bytes) -> bool:
    """Every non-blank line is a JSON object (a file read as JSON lines by its content)."""
    seen = False
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            if not isinstance(_decode(raw), dict):
                return False
        except (UnicodeDecodeError, ValueError):
            return False
        seen = True
    return seen


@dataclass
class JsonLines:
    """The objects of a JSON lines file, with their 1-based line numbers."""

    path: Path
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    cut: int = 0  # a cut last line skipped (0 or 1)


def loads(text: str | bytes) -> Any:
    """``json.loads``, with nesting too deep for the parser a ``ValueError`` like any other
    bad JSON (not a ``RecursionError``)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _decode(raw: bytes) -> Any:
    return loads(raw.decode("utf-8"))


def parse_json_lines(path: str | Path, data: bytes, what: str = "a JSON object",
                     strict: bool = False) -> JsonLines:
    """``data`` (the bytes of ``path``) as JSON objects. A last line without its newline that
    does not decode is cut: skipped and counted (an error too if ``strict``: input files
    that no tool of ours appends to). Any other bad line raises :class:`BadInputFile` with
    its line number."""
    path = Path(path)
    out = JsonLines(path)
    lines = data.split(b"\n")
    cut_index = len(lines) - 1 if not data.endswith(b"\n") else -1
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            obj = _decode(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            if i == cut_index and not strict:
                out.cut = 1
                continue
            why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else f"not JSON ({exc})"
            raise BadInputFile(path, why, line=i + 1) from None
        if not isinstance(obj, dict):
            raise BadInputFile(path, f"expected {what}, got {type(obj).__name__}", line=i + 1)
        out.records.append((i + 1, obj))
    return out


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; :class:`BadInputFile` for a missing file, a folder, no permission."""
    path = Path(path)
    if path.is_dir():
        raise BadInputFile(path, "is a folder, expected a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputFile(path, exc.strerror or str(exc)) from None


def read_json_lines(path: str | Path, what: str = "a JSON object", missing_ok: bool = False) -> JsonLines:
    """:func:`parse_json_lines` of a file (an empty result for a missing one if ``missing_ok``)."""
    path = Path(path)
    if missing_ok and not path.exists():
        return JsonLines(path)
    return parse_json_lines(path, read_bytes(path), what)


def check_unique(ids: list[str], what: str = "document") -> None:
    """Refuse ids that occur twice (:class:`UserInputError`, naming the first): a resume
    skips an id already written, so a second text with it would never be done."""
    seen: dict[str, int] = {}
    for n, doc_id in enumerate(ids, 1):
        if doc_id in seen:
            raise UserInputError(f"{what} id {doc_id!r} occurs twice ({what}s {seen[doc_id]} and {n}); "
                                 "resuming needs unique ids")
        seen[doc_id] = n


def cut_warning(path: str | Path) -> str:
    """What a command prints when a resume found a cut last line in its output."""
    return (f"warning: {path}: a cut last line (an interrupted run) was moved to {path}.cut "
            "and its record redone")


def cut_tail(data: bytes) -> bytes:
    """What follows the last newline: a cut line, or a whole last line without its newline."""
    return data[data.rfind(b"\n") + 1:]


def repair_for_append(path: str | Path) -> int:
    """Make ``path`` end with a newline before it is appended to: a last line without one is
    completed if it is a whole JSON object, else moved to ``PATH.cut`` (kept, never lost) and
    cut off. Returns 1 if a cut line was moved aside, else 0."""
    path = Path(path)
    if not path.is_file():
        return 0
    data = read_bytes(path)
    tail = cut_tail(data)
    if not tail:
        return 0
    try:
        whole = isinstance(_decode(tail), dict)
    except (UnicodeDecodeError, ValueError):
        whole = False
    if whole:
        with path.open("ab") as f:
            f.write(b"\n")
        return 0
    aside = path.with_name(path.name + ".cut")
    with aside.open("ab") as f:
        f.write(tail + b"\n")
    with path.open("r+b") as f:
        f.truncate(len(data) - len(tail))
    log.warning("%s: cut last line (%d bytes) moved to %s; its record is redone", path, len(tail), aside)
    return 1


def open_for_append(path: str | Path) -> TextIO:
    """``path`` opened to append records (after :func:`repair_for_append`); folders made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    repair_for_append(path)
    return path.open("a", encoding="utf-8")


def append(sink: TextIO, record: dict[str, Any]) -> None:
    """One record as one line, flushed (a kill leaves at most this line cut)."""
    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    sink.flush()
