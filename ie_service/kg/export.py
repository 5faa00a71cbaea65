"""Exports of a :class:`Graph`: RDF (Turtle, N-Triples) with rdflib, Neo4j bulk-import CSV,
and parameterised Cypher (values travel as parameters, never inside the query text).

Every exporter writes the values :func:`~ie_service.kg.graph.load_graph` normalised once.
CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return) get a leading ``'`` (OWASP's advice for CSV injection).

Every entity is linked to the documents that mention it (``MENTIONS`` in Neo4j,
``ie:mentionedIn`` in RDF), as LangChain's graph documents do."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from urllib.parse import quote

from .graph import Graph

BASE = "https://ie-service.example/kg/"

CYPHER_DOCS = "UNWIND $rows AS row MERGE (d:Document {id: row.id})"
CYPHER_ENTITIES = (
    "UNWIND $rows AS row MERGE (e:Entity {id: row.id}) SET e.name = row.name, e.type = row.type"
)
CYPHER_MENTIONS = (
    "UNWIND $rows AS row MATCH (d:Document {id: row.doc_id}), (e:Entity {id: row.entity_id}) "
    "MERGE (d)-[:MENTIONS]->(e)"
)
CYPHER_RELATIONS = (
    "UNWIND $rows AS row MATCH (h:Entity {id: row.head}), (t:Entity {id: row.tail}) "
    "MERGE (h)-[r:RELATION {type: row.relation, doc_id: row.doc_id}]->(t)"
)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell that a spreadsheet shows as text, never evaluates."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _slug(text: str) -> str:
    return quote(re.sub(r"\s+", "_", text.strip()), safe="")


def to_rdf(graph: Graph, fmt: str, base: str = BASE) -> str:
    """``fmt``: ``turtle`` or ``nt``."""
    from rdflib import RDF, RDFS, Literal, Namespace
    from rdflib import Graph as RDFGraph

    ie = Namespace(base)
    ent, rel, typ, doc = (Namespace(base + p) for p in ("entity/", "relation/", "type/", "doc/"))
    g = RDFGraph()
    g.bind("ie", ie)
    g.bind("rel", rel)
    for e in graph.entities.values():
        g.add((ent[e.id], RDFS.label, Literal(e.name)))
        g.add((ent[e.id], RDF.type, typ[_slug(e.type)] if e.type else ie.Entity))
        for d in sorted(e.docs):
            g.add((ent[e.id], ie.mentionedIn, doc[_slug(d)]))
    for edge in graph.edges:
        g.add((ent[edge.head], rel[_slug(edge.relation)], ent[edge.tail]))
    for r in {edge.relation for edge in graph.edges}:
        g.add((rel[_slug(r)], RDFS.label, Literal(r)))
    return g.serialize(format=fmt)


def to_neo4j_csv(graph: Graph, folder: Path) -> list[Path]:
    """Files for ``neo4j-admin database import`` (headers with :ID / :START_ID / :TYPE)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "entities.csv": (["id:ID", "name", "type", ":LABEL"],
                         [[e.id, csv_cell(e.name), csv_cell(e.type or ""), "Entity"]
                          for e in graph.entities.values()]),
        "documents.csv": (["id:ID", ":LABEL"], [[csv_cell(d), "Document"] for d in sorted(graph.docs)]),
        "relations.csv": ([":START_ID", ":END_ID", ":TYPE", "relation", "doc_id"],
                          [[e.head, e.tail, "RELATION", csv_cell(e.relation), csv_cell(e.doc_id)]
                           for e in graph.edges]),
        "mentions.csv": ([":START_ID", ":END_ID", ":TYPE"],
                         [[csv_cell(d), e.id, "MENTIONS"] for e in graph.entities.values()
                          for d in sorted(e.docs)]),
    }
    written = []
    for name, (header, rows) in files.items():
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        written.append(path)
    return written


def to_cypher(graph: Graph) -> list[dict]:
    """Statements ``{"query", "parameters"}`` to run in order with a driver:
    ``session.run(s["query"], s["parameters"])``."""
    return [
        {"query": CYPHER_DOCS, "parameters": {"rows": [{"id": d} for d in sorted(graph.docs)]}},
        {"query": CYPHER_ENTITIES, "parameters": {"rows": [
            {"id": e.id, "name": e.name, "type": e.type} for e in graph.entities.values()]}},
        {"query": CYPHER_MENTIONS, "parameters": {"rows": [
            {"doc_id": d, "entity_id": e.id} for e in graph.entities.values() for d in sorted(e.docs)]}},
        {"query": CYPHER_RELATIONS, "parameters": {"rows": [
            {"head": e.head, "tail": e.tail, "relation": e.relation, "doc_id": e.doc_id} for e in graph.edges]}},
    ]


def export(graph: Graph, fmt: str, out: Path) -> list[Path]:
    if fmt in ("turtle", "nt"):
        out.write_text(to_rdf(graph, fmt), encoding="utf-8")
        return [out]
    if fmt == "neo4j-csv":
        return to_neo4j_csv(graph, out)
    if fmt == "cypher":
        out.write_text(json.dumps(to_cypher(graph), ensure_ascii=False, indent=1), encoding="utf-8")
        return [out]
    raise ValueError(f"unknown export format {fmt!r}")
