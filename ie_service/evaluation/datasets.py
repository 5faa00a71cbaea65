"""Loaders for public IE test sets into one gold record type.

Formats: WNUT-17 (``token<TAB>BIO``), CrossNER JSON (``sentence`` + ``entity_list``), FewFC
JSONL (``content`` + ``events[].mentions``), and the project's own JSONL (``text`` +
``entities`` / ``relations`` (or InstructIE's ``relation``) / ``events``). The named test sets
ship inside the package (``ie_service/data``, each with its license); any file of these formats
can be given by path. ``$IE_SERVICE_DATA`` (default ``../shared/data``) is where training data is
looked for.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import jsonl
from ..extraction.tasks import TASKS
from ..gold import GoldDoc, GoldEvent
from ..paths import bundled_data_dir
from ..errors import BadInputFile


def data_dir() -> Path:
    """The training-data folder: ``$IE_SERVICE_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("IE_SERVICE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


NAMED = {
    "wnut17": ("wnut17/emerging.test.annotated", "bio"),
    "crossner-ai": ("crossner/ai-test.json", "crossner"),
    "crossner-music": ("crossner/music-test.json", "crossner"),
    "fewfc": ("fewfc/test_base.json", "fewfc"),
}


def _text_of(path: Path) -> str:
    """The file as UTF-8 text; :class:`BadInputFile` (missing, a folder, binary) otherwise."""
    data = jsonl.read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputFile(path, f"not UTF-8 text (byte {exc.start}); a binary file?",
                           line=data.count(b"\n", 0, exc.start) + 1) from None


def _checked(model: type[BaseModel], value: Any, path: Path, line: int | None, what: str) -> Any:
    """``value`` validated as ``model`` (:class:`BadInputFile` naming the first problem)."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "the row"
        raise BadInputFile(path, f"not {what}: {where}: {err['msg']}", line=line) from None


_BIO_TAG = re.compile(r"^(O|[BI]-\S+)$")


def load_bio(path: Path) -> list[GoldDoc]:
    docs, tokens, tags = [], [], []

    def flush() -> None:
        if tokens:
            docs.append(_bio_doc(f"{len(docs)}", tokens[:], tags[:]))
        tokens.clear()
        tags.clear()

    for n, line in enumerate(_text_of(path).splitlines(), 1):
        if not line.strip():
            flush()
            continue
        token, _, tag = line.rstrip("\n").rpartition("\t")
        if not token:  # some files use spaces
            token, _, tag = line.strip().rpartition(" ")
        tag = tag.strip() or "O"
        if not token or not _BIO_TAG.match(tag):
            raise BadInputFile(path, f"not BIO: expected TOKEN<TAB>TAG with TAG O, B-TYPE or I-TYPE, "
                                     f"got {line[:60]!r} (wrong --format?)", line=n)
        tokens.append(token)
        tags.append(tag)
    flush()
    return docs


def bio_entities(tokens: list[str], tags: list[str], join: str = " ") -> list[tuple[str, str]]:
    """(text, type) of every BIO span, its tokens joined with ``join`` (an I- that does not
    continue a span of its type starts one)."""
    entities, current, ctype = [], [], None
    for token, tag in zip(tokens + [""], tags + ["O"]):
        inside = tag.startswith("I-") and ctype == tag[2:]
        if current and not inside:
            entities.append((join.join(current), ctype))
            current, ctype = [], None
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            current, ctype = [token], tag[2:]
        elif inside:
            current.append(token)
    return entities


def _bio_doc(doc_id: str, tokens: list[str], tags: list[str]) -> GoldDoc:
    return GoldDoc(id=doc_id, text=" ".join(tokens), entities=bio_entities(tokens, tags))


# ---- the rows of each JSON format (what a file must hold; pydantic names what is wrong)


class _Row(BaseModel):
    model_config = ConfigDict(strict=True)


class CrossNEREntity(_Row):
    name: str
    type: str


class CrossNERRow(_Row):
    sentence: str
    entity_list: list[CrossNEREntity] = Field(default_factory=list)


class FewFCMention(_Row):
    word: str
    role: str


class FewFCEvent(_Row):
    type: str
    mentions: list[FewFCMention] = Field(default_factory=list)


class FewFCRow(_Row):
    id: str | int | None = None
    content: str
    events: list[FewFCEvent] = Field(default_factory=list)


class JsonlEntity(_Row):
    text: str
    type: str


class JsonlRelation(_Row):
    head: str
    relation: str
    tail: str


class JsonlArgument(_Row):
    role: str
    text: str


class JsonlEvent(_Row):
    type: str
    trigger: str | None = None
    arguments: list[JsonlArgument] = Field(default_factory=list)


class JsonlRow(_Row):
    model_config = ConfigDict(strict=True, extra="allow")
    id: str | int | None = None
    text: str
    entities: list[JsonlEntity] = Field(default_factory=list)
    relations: list[JsonlRelation] | None = None
    relation: list[JsonlRelation] | None = None  # InstructIE / CCKS2023
    events: list[JsonlEvent] = Field(default_factory=list)


def load_crossner(path: Path) -> list[GoldDoc]:
    try:
        data = jsonl.loads(_text_of(path))
    except json.JSONDecodeError as exc:
        raise BadInputFile(path, f"not JSON: {exc.msg} (wrong --format?)", line=exc.lineno) from None
    except ValueError as exc:  # nested too deeply
        raise BadInputFile(path, f"not usable JSON: {exc}") from None
    if not isinstance(data, list):
        raise BadInputFile(path, f"not CrossNER: expected a JSON list of sentences, got {type(data).__name__}")
    rows = [_checked(CrossNERRow, d, path, None, f"CrossNER (item {i})") for i, d in enumerate(data)]
    return [GoldDoc(id=str(i), text=r.sentence, entities=[(e.name, e.type) for e in r.entity_list])
            for i, r in enumerate(rows)]


def _json_lines(path: Path) -> list[tuple[int, dict]]:
    return jsonl.parse_json_lines(path, jsonl.read_bytes(path), strict=True).records


def load_fewfc(path: Path) -> list[GoldDoc]:
    docs = []
    for n, d in _json_lines(path):
        row = _checked(FewFCRow, d, path, n, "FewFC")
        events = []
        for ev in row.events:
            trigger = next((m.word for m in ev.mentions if m.role == "trigger"), None)
            args = [(m.role, m.word) for m in ev.mentions if m.role != "trigger"]
            events.append(GoldEvent(type=ev.type, trigger=trigger, arguments=args))
        docs.append(GoldDoc(id=str(row.id if row.id is not None else len(docs)), text=row.content, events=events))
    return docs


_JSONL_FIELDS = {"id", "text", "entities", "relations", "relation", "events"}


def load_jsonl(path: Path) -> list[GoldDoc]:
    """The project's format; fields it does not know are kept in ``extra``."""
    docs = []
    for n, d in _json_lines(path):
        row = _checked(JsonlRow, d, path, n, "a JSONL gold row")
        relations = row.relations if row.relations is not None else (row.relation or [])
        docs.append(GoldDoc(
            id=str(row.id if row.id is not None else n - 1), text=row.text,
            entities=[(e.text, e.type) for e in row.entities],
            relations=[(r.head, r.relation, r.tail) for r in relations],
            events=[GoldEvent(type=e.type, trigger=e.trigger, arguments=[(a.role, a.text) for a in e.arguments])
                    for e in row.events],
            extra={k: v for k, v in d.items() if k not in _JSONL_FIELDS}))
    return docs


LOADERS = {"bio": load_bio, "crossner": load_crossner, "fewfc": load_fewfc, "jsonl": load_jsonl}


def sniff_format(path: Path) -> str:
    """By content: a JSON list is CrossNER, JSON lines FewFC (``content``) or the project's
    JSONL, anything else BIO (its loader names the first line that is not)."""
    head = jsonl.read_bytes(path)[:4000].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if head.startswith("["):
        return "crossner"
    if head.startswith("{"):
        return "fewfc" if '"content"' in head.splitlines()[0] else "jsonl"
    return "bio"


def load(name_or_path: str, fmt: str | None = None) -> list[GoldDoc]:
    """A named set (``wnut17``, ``crossner-ai``, ``crossner-music``, ``fewfc``) or a file;
    :class:`BadInputFile` naming the file (and line) for anything that is not one."""
    if name_or_path in NAMED:
        rel, named_fmt = NAMED[name_or_path]
        path, fmt = bundled_data_dir() / rel, fmt or named_fmt
        if not path.is_file():
            raise BadInputFile(path, f"the named set {name_or_path!r} is missing from this installation "
                                     "(reinstall ie-service, or give the file's path)")
    else:
        path = Path(name_or_path)
        if path.is_dir():
            raise BadInputFile(path, "is a folder, expected a dataset file")
        if not path.is_file():
            raise BadInputFile(path, f"no such file (named sets: {', '.join(sorted(NAMED))})")
    docs = LOADERS[fmt or sniff_format(path)](path)
    if not docs:
        raise BadInputFile(path, "no documents in this file")
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        if doc.id in seen:
            raise BadInputFile(path, f"document id {doc.id!r} occurs twice (documents {seen[doc.id] + 1} "
                                     f"and {i + 1}); resuming needs unique ids")
        seen[doc.id] = i
    return docs


def labels_of(docs: list[GoldDoc], task: str) -> Any:
    """The schema naming every label a dataset uses for ``task`` (entity types, relations,
    event type → roles, ...)."""
    return TASKS[task].gold_schema(docs)
