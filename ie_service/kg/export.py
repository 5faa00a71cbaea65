"""Exports of a :class:`Graph`: RDF (Turtle, N-Triples) with rdflib, Neo4j bulk-import CSV,
parameterised Cypher (values travel as parameters, never inside the query text) and a
self-contained HTML page (:mod:`~ie_service.kg.html_view`).

Every exporter writes the values :func:`~ie_service.kg.graph.load_graph` normalised once.
CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return) get a leading ``'`` (OWASP's advice for CSV injection).

Every entity is linked to the documents that mention it (``MENTIONS`` in Neo4j,
``ie:mentionedIn`` in RDF), as LangChain's graph documents do."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .graph import Graph

if TYPE_CHECKING:
    from .build import Document

BASE = "https://ie-service.example/kg/"

CYPHER_DOCS = "UNWIND $rows AS row MERGE (d:Document {id: row.id})"
CYPHER_ENTITIES = (
    "UNWIND $rows AS row MERGE (e:Entity {id: row.id}) SET e.name = row.name, e.type = row.type"
)
# two MATCH clauses, not ``MATCH (a), (b)``: the same in Cypher, but embedded engines
# (Kùzu / LadybugDB) plan the comma form as a cross product of the two node sets
CYPHER_MENTIONS = (
    "UNWIND $rows AS row MATCH (d:Document {id: row.doc_id}) MATCH (e:Entity {id: row.entity_id}) "
    "MERGE (d)-[:MENTIONS]->(e)"
)
CYPHER_RELATIONS = (
    "UNWIND $rows AS row MATCH (h:Entity {id: row.head}) MATCH (t:Entity {id: row.tail}) "
    "MERGE (h)-[r:RELATION {type: row.relation, doc_id: row.doc_id}]->(t)"
)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A text cell that a spreadsheet shows as text, never evaluates. A value that starts with
    ``'`` gets one more, so the escape stays one-to-one (ids ``=x`` and ``'=x`` stay two ids);
    :func:`csv_value` undoes it."""
    return "'" + value if value.startswith(FORMULA_START + ("'",)) else value


def csv_value(cell: str) -> str:
    """The value that :func:`csv_cell` escaped."""
    return cell[1:] if cell.startswith("'") else cell


def _slug(text: str) -> str:
    """An IRI segment for a name: percent-encoded, so two names never share an IRI."""
    return quote(text, safe="")


def _edge_key(edge) -> str:
    text = "\x1f".join((edge.head, edge.relation, edge.tail, edge.doc_id))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


class Text(str):
    """An RDF literal (a plain string is an IRI) in :func:`rdf_triples`."""


class Number(Text):
    """An ``xsd:decimal`` literal (a confidence)."""


XSD_DECIMAL = "http://www.w3.org/2001/XMLSchema#decimal"


def _number(value: float) -> Number:
    return Number(f"{value:.4f}".rstrip("0").rstrip(".") if value else "0")


def _csv_number(value: float | None) -> str:
    return "" if value is None else str(_number(value))


RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"


def rdf_triples(graph: Graph, base: str = BASE) -> Iterator[tuple[str, str, str]]:
    """The graph as RDF: (subject IRI, predicate IRI, object IRI or :class:`Text`).

    Entities (``rdfs:label`` name, ``rdf:type`` type, ``ie:mentionedIn`` documents), documents
    (``ie:Document``, label = id), relations as direct triples ``head rel:NAME tail`` for
    querying, and each relation of each document also as an ``ie:Relation`` node
    (``ie:head``, ``ie:predicate``, ``ie:tail``, ``ie:source``), so nothing of the graph is
    lost. Names are labels; IRIs are percent-encoded names (types, relations, documents) or
    entity ids. A confidence is ``ie:confidence`` (``xsd:decimal``) on the entity and on the
    ``ie:Relation`` node."""
    ent, rel, typ, doc, stmt = (base + p for p in ("entity/", "relation/", "type/", "doc/", "edge/"))
    for d in sorted(graph.docs):
        yield doc + _slug(d), RDF_TYPE, base + "Document"
        yield doc + _slug(d), RDFS_LABEL, Text(d)
    for e in graph.entities.values():
        yield ent + e.id, RDFS_LABEL, Text(e.name)
        yield ent + e.id, RDF_TYPE, typ + _slug(e.type) if e.type else base + "Entity"
        if e.confidence is not None:
            yield ent + e.id, base + "confidence", _number(e.confidence)
        for d in sorted(e.docs):
            yield ent + e.id, base + "mentionedIn", doc + _slug(d)
    for t in sorted({e.type for e in graph.entities.values() if e.type}):
        yield typ + _slug(t), RDFS_LABEL, Text(t)
    direct = set()
    for edge in graph.edges:
        head, relation, tail = ent + edge.head, rel + _slug(edge.relation), ent + edge.tail
        if (head, relation, tail) not in direct:
            direct.add((head, relation, tail))
            yield head, relation, tail
        node = stmt + _edge_key(edge)
        yield node, RDF_TYPE, base + "Relation"
        yield node, base + "head", head
        yield node, base + "predicate", relation
        yield node, base + "tail", tail
        yield node, base + "source", doc + _slug(edge.doc_id)
        if edge.confidence is not None:
            yield node, base + "confidence", _number(edge.confidence)
    for r in sorted({edge.relation for edge in graph.edges}):
        yield rel + _slug(r), RDFS_LABEL, Text(r)


_NT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}


def _nt_term(term: str) -> str:
    if isinstance(term, Number):
        return f'"{term}"^^<{XSD_DECIMAL}>'
    if isinstance(term, Text):
        return '"' + re.sub(r'[\\"\n\r]', lambda m: _NT_ESCAPES[m.group()], term) + '"'
    return f"<{term}>"


def to_ntriples(graph: Graph, base: str = BASE) -> str:
    """N-Triples of :func:`rdf_triples`, written directly (UTF-8; literals escape ``\\``,
    ``"``, newline and carriage return): about 10x faster than rdflib's serialiser."""
    return "".join(f"{_nt_term(s)} {_nt_term(p)} {_nt_term(o)} .\n" for s, p, o in rdf_triples(graph, base))


def to_rdf(graph: Graph, fmt: str, base: str = BASE) -> str:
    """``fmt``: ``nt`` (:func:`to_ntriples`) or ``turtle`` (rdflib, with prefixes), the
    triples of :func:`rdf_triples`."""
    if fmt == "nt":
        return to_ntriples(graph, base)
    from rdflib import Graph as RDFGraph
    from rdflib import Literal, URIRef

    g = RDFGraph()
    for prefix, ns in (("ie", ""), ("rel", "relation/"), ("type", "type/")):
        g.bind(prefix, base + ns)
    for s, p, o in rdf_triples(graph, base):
        if isinstance(o, Number):
            g.add((URIRef(s), URIRef(p), Literal(str(o), datatype=URIRef(XSD_DECIMAL))))
        else:
            g.add((URIRef(s), URIRef(p), Literal(str(o)) if isinstance(o, Text) else URIRef(o)))
    return g.serialize(format=fmt)


def to_neo4j_csv(graph: Graph, folder: Path) -> list[Path]:
    """Files for ``neo4j-admin database import`` (headers with :ID / :START_ID / :TYPE).
    Entities and documents have their own ID spaces (``:ID(Entity)``, ``:ID(Document)``): a
    document id may equal an entity id. Text cells are escaped with :func:`csv_cell`."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "entities.csv": (["id:ID(Entity)", "name", "type", "confidence:float", ":LABEL"],
                         [[e.id, csv_cell(e.name), csv_cell(e.type or ""), _csv_number(e.confidence), "Entity"]
                          for e in graph.entities.values()]),
        "documents.csv": (["id:ID(Document)", ":LABEL"],
                          [[csv_cell(d), "Document"] for d in sorted(graph.docs)]),
        "relations.csv": ([":START_ID(Entity)", ":END_ID(Entity)", ":TYPE", "relation", "doc_id",
                           "confidence:float"],
                          [[e.head, e.tail, "RELATION", csv_cell(e.relation), csv_cell(e.doc_id),
                            _csv_number(e.confidence)] for e in graph.edges]),
        "mentions.csv": ([":START_ID(Document)", ":END_ID(Entity)", ":TYPE"],
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


def _with_confidence(query: str, var: str, rows: list[dict]) -> dict:
    """The statement, setting ``confidence`` when any row has one (a column of nulls only
    has no type in an embedded engine: then the property is left out)."""
    if any(r["confidence"] is not None for r in rows):
        query += f"{' SET' if var == 'r' else ','} {var}.confidence = row.confidence"
    else:
        rows = [{k: v for k, v in r.items() if k != "confidence"} for r in rows]
    return {"query": query, "parameters": {"rows": rows}}


def to_cypher(graph: Graph) -> list[dict]:
    """Statements ``{"query", "parameters"}`` to run in order with a driver:
    ``session.run(s["query"], s["parameters"])``. Entities and relations carry
    ``confidence`` as a property when the triples had one."""
    return [
        {"query": CYPHER_DOCS, "parameters": {"rows": [{"id": d} for d in sorted(graph.docs)]}},
        _with_confidence(CYPHER_ENTITIES, "e", [
            {"id": e.id, "name": e.name, "type": e.type, "confidence": e.confidence}
            for e in graph.entities.values()]),
        {"query": CYPHER_MENTIONS, "parameters": {"rows": [
            {"doc_id": d, "entity_id": e.id} for e in graph.entities.values() for d in sorted(e.docs)]}},
        _with_confidence(CYPHER_RELATIONS, "r", [
            {"head": e.head, "tail": e.tail, "relation": e.relation, "doc_id": e.doc_id,
             "confidence": e.confidence} for e in graph.edges]),
    ]


def export(graph: Graph, fmt: str, out: Path, documents: Iterable[Document] | None = None,
           max_nodes: int = 500) -> list[Path]:
    """Write ``graph`` as ``fmt``; ``documents`` and ``max_nodes`` are for ``html`` only."""
    if fmt == "html":
        from .html_view import to_html

        out.write_text(to_html(graph, documents, max_nodes=max_nodes), encoding="utf-8")
        return [out]
    if fmt in ("turtle", "nt"):
        out.write_text(to_rdf(graph, fmt), encoding="utf-8")
        return [out]
    if fmt == "neo4j-csv":
        return to_neo4j_csv(graph, out)
    if fmt == "cypher":
        out.write_text(json.dumps(to_cypher(graph), ensure_ascii=False, indent=1), encoding="utf-8")
        return [out]
    raise ValueError(f"unknown export format {fmt!r}")
