"""Triples JSONL → a de-duplicated graph of entities, relations and source documents."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


def entity_key(name: str) -> str:
    """Names that differ only in case or spacing are the same entity."""
    return " ".join(name.split()).casefold()


def entity_id(key: str) -> str:
    return "e" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class EntityNode:
    id: str
    name: str
    type: str | None
    docs: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Edge:
    head: str
    relation: str
    tail: str
    doc_id: str


@dataclass
class Graph:
    entities: dict[str, EntityNode] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    docs: set[str] = field(default_factory=set)


def load_graph(path: str | Path) -> Graph:
    names: dict[str, Counter] = defaultdict(Counter)
    types: dict[str, Counter] = defaultdict(Counter)
    docs_of: dict[str, set[str]] = defaultdict(set)
    edges: set[Edge] = set()
    all_docs: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line of an interrupted build
        doc = rec["doc_id"]
        all_docs.add(doc)
        for t in rec["triples"]:
            ends = []
            for ent in (t["head"], t["tail"]):
                key = entity_key(ent["text"])
                names[key][ent["text"].strip()] += 1
                if ent.get("type"):
                    types[key][ent["type"]] += 1
                docs_of[key].add(doc)
                ends.append(entity_id(key))
            edges.add(Edge(ends[0], t["relation"], ends[1], doc))
    graph = Graph(docs=all_docs)
    for key, counter in names.items():
        eid = entity_id(key)
        graph.entities[eid] = EntityNode(
            id=eid, name=counter.most_common(1)[0][0],
            type=types[key].most_common(1)[0][0] if types[key] else None, docs=docs_of[key])
    graph.edges = sorted(edges, key=lambda e: (e.doc_id, e.head, e.relation, e.tail))
    return graph
