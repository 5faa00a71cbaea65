"""Triples JSONL → a de-duplicated graph of entities, relations and source documents.

Names, types, relations and document ids are normalised once, here (:func:`clean_text`),
so every exporter (RDF, Neo4j CSV, Cypher) writes the same values: no raw newlines or
control characters, no leading/trailing whitespace, and no entity with an empty name."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsonl
from ..errors import BadInputFile

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str) -> str:
    """One line of text: control characters dropped, every run of whitespace (newlines,
    tabs, Unicode separators) one space, no space at either end."""
    value = _CONTROL.sub("", unicodedata.normalize("NFC", value))
    return " ".join(value.split())


def entity_key(name: str) -> str:
    """Names that differ only in case or spacing are the same entity."""
    return clean_text(name).casefold()


def entity_id(key: str) -> str:
    return "e" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class EntityNode:
    id: str
    name: str
    type: str | None
    docs: set[str] = field(default_factory=set)
    confidence: float | None = None  # the highest of its mentions' (a triple end's own)


@dataclass(frozen=True)
class Edge:
    head: str
    relation: str
    tail: str
    doc_id: str
    # the triple's confidence (the highest when a document states it more than once); not
    # part of the edge's identity
    confidence: float | None = field(default=None, compare=False)


@dataclass
class Graph:
    entities: dict[str, EntityNode] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    docs: set[str] = field(default_factory=set)
    skipped: int = 0  # triples dropped: an end or the relation is empty after cleaning
    # triple records read (not skipped), repeats included: what `kg build` counted; edges
    # holds each (head, relation, tail) once per document
    triples: int = 0


def _text(value: Any, what: str, path: Path, n: int) -> str:
    if not isinstance(value, str):
        raise BadInputFile(path, f"{what} must be a string, got {type(value).__name__}", line=n)
    return value


def _confidence(value: Any, what: str, path: Path, n: int) -> float | None:
    """A record's ``confidence``: a number in [0, 1], or absent / null (older builds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BadInputFile(path, f"{what}.confidence must be a number in [0, 1] or null, got {value!r}", line=n)
    return float(value)


def _best(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _entity(value: Any, what: str, path: Path, n: int) -> tuple[str, str | None]:
    if not isinstance(value, dict):
        raise BadInputFile(path, f"{what} must be an object with 'text', got {type(value).__name__}", line=n)
    name = clean_text(_text(value.get("text"), f"{what}.text", path, n))
    raw_type = value.get("type")
    if raw_type is not None and not isinstance(raw_type, str):
        raise BadInputFile(path, f"{what}.type must be a string or null, got {type(raw_type).__name__}", line=n)
    return name, (clean_text(raw_type) or None) if raw_type else None


def _records(path: Path):
    """``(line number, object)`` for every line; a cut last line (an interrupted build
    writes no newline after it) is skipped with a warning, any other bad line raises."""
    lines = jsonl.read_json_lines(path, what="an object with doc_id and triples")
    if lines.cut:
        log.warning("%s: incomplete last line ignored (an interrupted build?)", path)
    yield from lines.records


def load_graph(path: str | Path) -> Graph:
    path = Path(path)
    names: dict[str, Counter] = defaultdict(Counter)
    types: dict[str, Counter] = defaultdict(Counter)
    docs_of: dict[str, set[str]] = defaultdict(set)
    sure: dict[str, float | None] = {}  # entity key → highest confidence of its mentions
    edges: dict[Edge, float | None] = {}
    all_docs: set[str] = set()
    records, skipped, kept = 0, 0, 0
    for n, rec in _records(path):
        if "doc_id" not in rec or "triples" not in rec:
            raise BadInputFile(path, "expected an object with doc_id and triples", line=n)
        doc_id = rec["doc_id"]
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        doc = clean_text(_text(doc_id, "doc_id", path, n))
        if not doc:
            raise BadInputFile(path, "doc_id is empty", line=n)
        triples = rec["triples"]
        if not isinstance(triples, list):
            raise BadInputFile(path, f"triples must be a list, got {type(triples).__name__}", line=n)
        records += 1
        all_docs.add(doc)
        for k, t in enumerate(triples):
            if not isinstance(t, dict):
                raise BadInputFile(path, f"triples[{k}] must be an object", line=n)
            (head, head_type), (tail, tail_type) = (_entity(t.get("head"), f"triples[{k}].head", path, n),
                                                    _entity(t.get("tail"), f"triples[{k}].tail", path, n))
            relation = clean_text(_text(t.get("relation"), f"triples[{k}].relation", path, n))
            if not head or not tail or not relation:
                skipped += 1
                continue
            kept += 1
            ends = []
            for name, type_, end in ((head, head_type, "head"), (tail, tail_type, "tail")):
                key = entity_key(name)
                names[key][name] += 1
                if type_:
                    types[key][type_] += 1
                docs_of[key].add(doc)
                sure[key] = _best(sure.get(key), _confidence(
                    t[end].get("confidence"), f"triples[{k}].{end}", path, n))
                ends.append(entity_id(key))
            edge = Edge(ends[0], relation, ends[1], doc)
            edges[edge] = _best(edges.get(edge), _confidence(t.get("confidence"), f"triples[{k}]", path, n))
    if records == 0:
        raise BadInputFile(path, "no triple records (expected JSON lines with doc_id and triples, "
                                 "as written by `ie-service kg build`)")
    if skipped:
        log.warning("%s: %d triple(s) with an empty entity or relation skipped", path, skipped)
    graph = Graph(docs=all_docs, skipped=skipped, triples=kept)
    for key, counter in names.items():
        eid = entity_id(key)
        graph.entities[eid] = EntityNode(
            id=eid, name=counter.most_common(1)[0][0],
            type=types[key].most_common(1)[0][0] if types[key] else None, docs=docs_of[key],
            confidence=sure.get(key))
    graph.edges = sorted((Edge(e.head, e.relation, e.tail, e.doc_id, c) for e, c in edges.items()),
                         key=lambda e: (e.doc_id, e.head, e.relation, e.tail))
    return graph
