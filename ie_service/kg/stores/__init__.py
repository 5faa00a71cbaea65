"""Embedded graph stores that a :class:`~ie_service.kg.graph.Graph` is loaded into and
queried from: ``oxigraph:PATH`` (RDF, SPARQL) and ``ladybug:PATH`` (property graph, Cypher).

Each store loads what the project's own exporters write (the N-Triples of
:func:`~ie_service.kg.export.to_rdf`, the statements of :func:`~ie_service.kg.export.to_cypher`),
so a load proves the export. ``load`` is clear-then-load: the store afterwards holds exactly
the graph of the triples file (loading twice gives the same store, never duplicates)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ...errors import UserInputError
from ..graph import Graph

# kind → (module, class, pip package it needs)
KINDS: dict[str, tuple[str, str, str]] = {
    "oxigraph": ("oxigraph_store", "OxigraphStore", "pyoxigraph"),
    "ladybug": ("ladybug_store", "LadybugStore", "ladybug"),
}


class Counts(BaseModel):
    """What a store (or a :class:`Graph`) holds; printed by ``kg load``."""

    entities: int
    relations: int
    documents: int
    mentions: int


class QueryError(UserInputError):
    """The engine refused a query (syntax, unknown name, a write on a read-only store)."""


class GraphStore(Protocol):
    def load(self, graph: Graph, progress: bool = True) -> Counts:
        """Replace the store's content by ``graph``; the counts afterwards."""

    def query(self, text: str) -> list[dict[str, Any]]:
        """Rows of a query in the store's language (SPARQL or Cypher)."""

    def counts(self) -> Counts: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoreSpec:
    kind: str
    path: Path


def usage() -> str:
    return "KIND:PATH with KIND one of " + ", ".join(KINDS)


def parse_store_spec(text: str) -> StoreSpec:
    """``oxigraph:PATH`` / ``ladybug:PATH``; :class:`ValueError` naming the kinds otherwise."""
    kind, sep, path = text.partition(":")
    if not sep or kind not in KINDS or not path:
        raise ValueError(f"expected {usage()}, got {text!r}")
    return StoreSpec(kind, Path(path))


def open_store(spec: StoreSpec, read_only: bool = False) -> GraphStore:
    """The store at ``spec.path`` (created on load; must exist when ``read_only``)."""
    module, cls, package = KINDS[spec.kind]
    if read_only and not spec.path.exists():
        raise UserInputError(f"{spec.path}: no {spec.kind} store here (load one with `ie-service kg load`)")
    try:
        importlib.import_module(package)
    except ImportError:
        raise UserInputError(f"the {spec.kind} store needs the package {package}: "
                             "pip install 'ie-service[kg]'") from None
    store_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    return store_class(spec.path, read_only=read_only)


def graph_counts(graph: Graph) -> Counts:
    """The counts a store holding ``graph`` must report."""
    return Counts(entities=len(graph.entities), relations=len(graph.edges), documents=len(graph.docs),
                  mentions=sum(len(e.docs) for e in graph.entities.values()))


def chunks(rows: list, size: int):
    for i in range(0, len(rows), size):
        yield rows[i:i + size]
