"""``oxigraph:PATH``: an on-disk Oxigraph (pyoxigraph) RDF store, queried with SPARQL
(``kg query`` opens it with ``Store.read_only`` and runs only read queries).

``load`` clears the store and bulk-loads the N-Triples of :func:`~ie_service.kg.export.to_rdf`
into the default graph, so the store holds what ``kg export --format nt`` writes: every
entity, document (``ie:Document``), mention and relation of each document (``ie:Relation``
nodes, besides the direct ``head rel:NAME tail`` triples)."""

from __future__ import annotations

import gc

from pathlib import Path
from typing import Any

import pyoxigraph as ox
from tqdm import tqdm

from ...errors import UserInputError, one_line
from ..export import BASE, RDFS_LABEL, to_rdf
from ..graph import Graph
from . import Counts, QueryError, chunks
from .read_only import check_sparql

XSD = "http://www.w3.org/2001/XMLSchema#"
_INTS = {XSD + t for t in ("integer", "int", "long", "short", "byte", "nonNegativeInteger",
                           "positiveInteger", "unsignedInt", "unsignedLong")}
_FLOATS = {XSD + t for t in ("decimal", "double", "float")}

COUNT_QUERIES = {
    "entities": f"SELECT (COUNT(DISTINCT ?e) AS ?n) WHERE {{ ?e <{RDFS_LABEL}> ?l "
                f"FILTER(STRSTARTS(STR(?e), \"{BASE}entity/\")) }}",
    "relations": f"SELECT (COUNT(*) AS ?n) WHERE {{ ?r a <{BASE}Relation> }}",
    "documents": f"SELECT (COUNT(*) AS ?n) WHERE {{ ?d a <{BASE}Document> }}",
    "mentions": f"SELECT (COUNT(*) AS ?n) WHERE {{ ?e <{BASE}mentionedIn> ?d }}",
}
CHUNK_LINES = 50_000


def term_value(term: Any) -> Any:
    """A SPARQL result term as JSON: an IRI or a literal's text; numbers and booleans typed."""
    if term is None:
        return None
    if isinstance(term, ox.BlankNode):
        return "_:" + term.value
    if isinstance(term, ox.Literal):
        datatype = term.datatype.value
        if datatype in _INTS:
            return int(term.value)
        if datatype in _FLOATS:
            return float(term.value)
        if datatype == XSD + "boolean":
            return term.value == "true"
        return term.value
    if isinstance(term, ox.NamedNode):
        return term.value
    return str(term)  # an RDF-star triple term


class OxigraphStore:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        try:
            self.store = ox.Store.read_only(str(path)) if read_only else ox.Store(str(path))
        except OSError as exc:
            raise UserInputError(f"{path}: cannot open as an oxigraph store ({one_line(exc)})") from None

    def load(self, graph: Graph, progress: bool = True) -> Counts:
        lines = to_rdf(graph, "nt").splitlines()
        self.store.clear()
        with tqdm(total=len(lines), desc="oxigraph load", unit="triple", disable=None if progress else True) as bar:
            for part in chunks(lines, CHUNK_LINES):
                self.store.bulk_load(input="\n".join(part) + "\n", format=ox.RdfFormat.N_TRIPLES)
                bar.update(len(part))
        self.store.flush()
        return self.counts()

    def query(self, text: str) -> list[dict[str, Any]]:
        """Rows of a read query; an update, LOAD or SERVICE is refused before it runs
        (:func:`~ie_service.kg.stores.read_only.check_sparql`)."""
        check_sparql(text)
        try:
            result = self.store.query(text)
            if isinstance(result, ox.QueryBoolean):
                return [{"ask": bool(result)}]
            if isinstance(result, ox.QueryTriples):
                return [{"subject": term_value(t.subject), "predicate": term_value(t.predicate),
                         "object": term_value(t.object)} for t in result]
            names = [v.value for v in result.variables]
            return [{name: term_value(row[name]) for name in names} for row in result]
        except (SyntaxError, OSError, ValueError) as exc:
            raise QueryError(f"SPARQL: {one_line(exc)}") from None

    def counts(self) -> Counts:
        return Counts(**{what: self.query(q)[0]["n"] for what, q in COUNT_QUERIES.items()})

    def close(self) -> None:
        """Release the store now: a writer left to the garbage collector keeps compacting,
        and a read-only open of the same folder then finds its files gone."""
        del self.store
        gc.collect()
