"""A user's own annotations → gold documents, checked row by row (``train data --from``).

Formats (sniffed from the file, or named):

- ``gold``: the JSONL ``ie-service eval`` reads, one document a line: ``{"text", "entities":
  [{"type", "text"?, "start"?, "end"?}], "relations": [{"head", "relation", "tail"}], "events":
  [{"type", "trigger"?, "arguments": [{"role", "text"?, "start"?, "end"?}]}]}``; a head, tail or
  trigger is a string or ``{"text"?, "start", "end"}``. An empty list is a real "none here"
  (the document teaches that the labels are absent); a row with none of the three keys has
  nothing to learn from. ``"task"`` may name the task a row is for (it must be registered).
- ``doccano``: JSONL ``{"text", "label": [[start, end, type], ...]}``, or doccano's relation
  export ``{"text", "entities": [{"id", "start_offset", "end_offset", "label"}], "relations":
  [{"from_id", "to_id", "type"}]}``.
- ``label-studio``: the JSON export, a list of tasks ``{"data": {"text"}, "annotations":
  [{"result": [...]}]}`` with ``labels`` results (NER spans) and ``relation`` results
  (``from_id`` → ``to_id``, the relation in ``labels``; ``direction: left`` reverses).

A row that cannot be used (not JSON, no text, offsets outside the text, a span text that is not
at its offsets or not in the text, an unknown task, empty labels) is a :class:`BadRow` with its
line number: counted, reported, and skipped, or refused with ``strict``. Nothing is dropped
without a line saying so.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..extraction.grounding import locate
from ..gold import GoldDoc, GoldEvent
from ..errors import BadInputFile

FORMATS = ("gold", "doccano", "label-studio")
OUTSIDE = "offsets outside the text"
MISMATCH = "span text not at its offsets"
NOT_IN_TEXT = "span text not in the text"
UNKNOWN_TASK = "unknown task"
EMPTY = "empty labels"
NOT_JSON = "not JSON"
NO_TEXT = "no text"
BAD_SHAPE = "not an annotation row"
SHOWN_LINES = 20  # line numbers listed per reason in a report


class RowError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str
    detail: str


@dataclass
class Row:
    """One usable document and the tasks it is annotated for."""

    line: int
    doc: GoldDoc
    tasks: tuple[str, ...]


@dataclass
class UserFile:
    path: Path
    format: str
    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """Counts, and per reason the count, the first line numbers and one example."""
        by_reason: dict[str, dict[str, Any]] = {}
        for b in self.bad:
            entry = by_reason.setdefault(b.reason, {"rows": 0, "lines": [], "example": b.detail})
            entry["rows"] += 1
            if len(entry["lines"]) < SHOWN_LINES:
                entry["lines"].append(b.line)
        tasks = Counter(t for r in self.rows for t in r.tasks)
        return {"file": str(self.path), "format": self.format, "rows": len(self.rows) + len(self.bad),
                "used": len(self.rows), "bad": len(self.bad), "bad_by_reason": by_reason,
                "docs_by_task": dict(sorted(tasks.items()))}

    def problems(self) -> list[str]:
        """One line per reason: ``PATH: N rows with <reason> (lines a, b, ...), e.g. <detail>``."""
        out = []
        for reason, e in self.report()["bad_by_reason"].items():
            more = ", ..." if e["rows"] > len(e["lines"]) else ""
            out.append(f"{self.path}: {e['rows']} row(s) with {reason} (line {', '.join(map(str, e['lines']))}"
                       f"{more}), e.g. {e['example']}")
        return out


# --- spans ---------------------------------------------------------------------------

def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def span_text(text: str, value: Any, start: Any = None, end: Any = None) -> str:
    """The span's text, checked against the document: offsets (when given) inside it and
    holding ``value`` (when given); a text without offsets somewhere in it."""
    if start is not None or end is not None:
        if not (isinstance(start, int) and isinstance(end, int)) or not 0 <= start < end <= len(text):
            raise RowError(OUTSIDE, f"[{start}, {end}] in a text of {len(text)} characters")
        got = text[start:end]
        if value is not None and not (isinstance(value, str) and _same(value, got)):
            raise RowError(MISMATCH, f"{value!r} is not at [{start}, {end}] (the text there is {got!r})")
        return got
    if not isinstance(value, str) or not value.strip():
        raise RowError(EMPTY, "a span with neither text nor offsets")
    if locate(value, text) is None:
        raise RowError(NOT_IN_TEXT, f"{value!r}")
    return value


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RowError(EMPTY, f"{what} {value!r}")
    return value.strip()


def _mention(text: str, value: Any) -> str:
    """A head / tail / trigger / argument: a string, or ``{"text"?, "start", "end"}``."""
    if isinstance(value, dict):
        return span_text(text, value.get("text"), value.get("start"), value.get("end"))
    return span_text(text, value)


def _text_of(row: dict) -> str:
    text = row.get("text", row.get("data"))
    if not isinstance(text, str) or not text.strip():
        raise RowError(NO_TEXT, "the row has no \"text\" string")
    return text


def _tasks(found: list[str]) -> tuple[str, ...]:
    from ..extraction.tasks import TASKS

    for name in found:
        if name not in TASKS:
            raise RowError(UNKNOWN_TASK, f"{name!r} (known: {sorted(TASKS)})")
    return tuple(found)


# --- gold JSONL ----------------------------------------------------------------------

def gold_row(row: dict, doc_id: str) -> Row:
    text = _text_of(row)
    present = [k for k in ("entities", "relations", "events") if k in row]
    if not present:
        raise RowError(EMPTY, "no \"entities\", \"relations\" or \"events\"")
    named = row.get("task")
    tasks = _tasks([named] if named is not None else [{"entities": "ner", "relations": "re",
                                                        "events": "ee"}[k] for k in present])
    entities = [(span_text(text, e.get("text"), e.get("start"), e.get("end")), _label(e.get("type"), "entity type"))
                for e in _list(row, "entities")]
    relations = [(_mention(text, r.get("head")), _label(r.get("relation"), "relation"), _mention(text, r.get("tail")))
                 for r in _list(row, "relations")]
    events = []
    for e in _list(row, "events"):
        trigger = e.get("trigger")
        events.append(GoldEvent(
            type=_label(e.get("type"), "event type"),
            trigger=_mention(text, trigger) if trigger is not None else None,
            arguments=[(_label(a.get("role"), "role"), span_text(text, a.get("text"), a.get("start"), a.get("end")))
                       for a in e.get("arguments", [])]))
    return Row(0, GoldDoc(id=doc_id, text=text, entities=entities, relations=relations, events=events), tasks)


def _list(row: dict, key: str) -> list[dict]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RowError(BAD_SHAPE, f"\"{key}\" is not a list of objects")
    return value


# --- doccano -------------------------------------------------------------------------

def doccano_row(row: dict, doc_id: str) -> Row:
    text = _text_of(row)
    if "label" in row:
        labels = row["label"]
        if not isinstance(labels, list) or not labels:
            raise RowError(EMPTY, "\"label\" is empty (not annotated)")
        entities = []
        for item in labels:
            if not (isinstance(item, list) and len(item) == 3):
                raise RowError(BAD_SHAPE, f"label {item!r} is not [start, end, type]")
            start, end, kind = item
            entities.append((span_text(text, None, start, end), _label(kind, "label")))
        return Row(0, GoldDoc(id=doc_id, text=text, entities=entities), ("ner",))
    spans = _list(row, "entities")
    if not spans:
        raise RowError(EMPTY, "no \"label\" and no \"entities\" (not annotated)")
    by_id = {}
    for s in spans:
        by_id[s.get("id")] = (span_text(text, None, s.get("start_offset"), s.get("end_offset")),
                              _label(s.get("label"), "label"))
    relations = []
    for r in _list(row, "relations"):
        if r.get("from_id") not in by_id or r.get("to_id") not in by_id:
            raise RowError(BAD_SHAPE, f"relation {r.get('id')!r} names a span id that is not in \"entities\"")
        relations.append((by_id[r["from_id"]][0], _label(r.get("type"), "relation type"), by_id[r["to_id"]][0]))
    tasks = ("ner", "re") if relations else ("ner",)
    doc = GoldDoc(id=doc_id, text=text, entities=list(by_id.values()), relations=relations)
    return Row(0, doc, tasks)


# --- Label Studio --------------------------------------------------------------------

LS_SPANS, LS_RELATION = "labels", "relation"


def label_studio_row(task: dict, doc_id: str) -> Row:
    data = task.get("data")
    if not isinstance(data, dict):
        raise RowError(NO_TEXT, "the task has no \"data\"")
    text = data.get("text")
    if text is None:  # the labeling config may call it anything: the one string field
        strings = [v for v in data.values() if isinstance(v, str)]
        text = strings[0] if len(strings) == 1 else None
    if not isinstance(text, str) or not text.strip():
        raise RowError(NO_TEXT, "\"data\" holds no text")
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    results = done[0].get("result") or [] if done else []
    if not results:
        raise RowError(EMPTY, "no annotation results (not annotated)")
    spans: dict[Any, list[tuple[str, str]]] = {}
    relations = []
    for r in results:
        kind = r.get("type")
        if kind == LS_SPANS:
            v = r.get("value") or {}
            labels = v.get("labels") or []
            if not labels:
                raise RowError(EMPTY, f"span {r.get('id')!r} has no label")
            value = span_text(text, v.get("text"), v.get("start"), v.get("end"))
            spans[r.get("id")] = [(value, _label(lab, "label")) for lab in labels]
        elif kind != LS_RELATION:
            raise RowError(UNKNOWN_TASK, f"result type {kind!r} (trainable: {LS_SPANS!r}, {LS_RELATION!r})")
    for r in results:
        if r.get("type") != LS_RELATION:
            continue
        if r.get("from_id") not in spans or r.get("to_id") not in spans:
            raise RowError(BAD_SHAPE, "a relation names a span id that is not a labelled span")
        labels = r.get("labels") or []
        if not labels:
            raise RowError(EMPTY, f"relation {r.get('from_id')!r} → {r.get('to_id')!r} has no label")
        head, tail = spans[r["from_id"]][0][0], spans[r["to_id"]][0][0]
        if r.get("direction") == "left":
            head, tail = tail, head
        relations += [(head, _label(lab, "relation"), tail) for lab in labels]
    entities = [e for values in spans.values() for e in values]
    tasks = ("ner", "re") if relations else ("ner",)
    return Row(0, GoldDoc(id=doc_id, text=text, entities=entities, relations=relations), tasks)


# --- files ---------------------------------------------------------------------------

PARSERS = {"gold": gold_row, "doccano": doccano_row, "label-studio": label_studio_row}


def sniff(path: Path, text: str) -> str:
    """``label-studio`` for a JSON list, ``doccano`` for JSONL with ``label`` or
    ``start_offset``, else ``gold``."""
    head = text.lstrip()
    if head.startswith("["):
        return "label-studio"
    first = head.splitlines()[0] if head else ""
    try:
        row = json.loads(first)
    except ValueError:
        return "gold"
    if isinstance(row, dict) and ("label" in row or '"start_offset"' in first):
        return "doccano"
    return "gold"


def _jsonl_items(text: str) -> list[tuple[int, Any]]:
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((i, json.loads(line)))
        except ValueError as exc:
            out.append((i, RowError(NOT_JSON, str(exc))))
    return out


def _json_list_items(path: Path, text: str) -> list[tuple[int, Any]]:
    """The items of a JSON list, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    out = []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise BadInputFile(path, "not JSON: the list is not closed", line=text.count("\n") + 1)
        if text[pos] == "]":
            return out
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise BadInputFile(path, f"not JSON: {exc}", line=line) from None
        out.append((line, item))


def read_user_file(path: str | Path, fmt: str | None = None) -> UserFile:
    """Every row of ``path``: usable documents and bad rows, with line numbers."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputFile(path, exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise BadInputFile(path, f"not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise BadInputFile(path, "the file is empty")
    fmt = fmt or sniff(path, text)
    if fmt not in PARSERS:
        raise BadInputFile(path, f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    items = _json_list_items(path, text) if fmt == "label-studio" else _jsonl_items(text)
    out = UserFile(path, fmt)
    for line, item in items:
        try:
            if isinstance(item, RowError):
                raise item
            if not isinstance(item, dict):
                raise RowError(BAD_SHAPE, f"a JSON {type(item).__name__}, not an object")
            doc_id = str(item.get("id", f"{path.stem}-{line}"))
            row = PARSERS[fmt](item, doc_id)
        except RowError as exc:
            out.bad.append(BadRow(line, exc.reason, exc.detail))
            continue
        row.line = line
        out.rows.append(row)
    return out
