"""A :class:`Graph` as one self-contained HTML page (``kg export --format html``).

The page inlines the vendored vis-network build (``static/vis-network.min.js``, see
``static/README.md``) and the graph as JSON in ``<script type="application/json">``, so it
opens offline; a Content-Security-Policy forbids any network access. Nodes are coloured by
entity type, edges labelled by relation; a search box finds an entity; clicking a node or
an edge shows the documents it comes from and, with ``documents``, their sentences that
mention it. Big graphs keep the ``max_nodes`` most connected entities.

The header counts triples as ``kg build`` wrote them (repeats across documents included) and
the distinct head → relation → tail edges drawn. Entity types come from the triples' ends,
which carry one only where the RE schema gave ``head_type`` / ``tail_type``; a graph with no
type at all shows one note instead of "(no type)" on every entity."""

from __future__ import annotations

import html
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from .graph import EntityNode, Graph, clean_text

if TYPE_CHECKING:
    from .build import Document

DEFAULT_MAX_NODES = 500
MAX_DOCS_WITH_SENTENCES = 5  # per node / edge: documents whose sentences are embedded
MAX_SENTENCES_PER_DOC = 3
MAX_SENTENCE_CHARS = 400
MAX_DOC_IDS = 100  # per node / edge: document ids listed (the page says how many more)

# Tableau 10 without its grey; grey is for entities without a type.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
NO_TYPE_COLOR = "#bab0ac"

_SENTENCE_BOUNDARY = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+"          # Latin end mark (and a closing quote), then space
    r"|(?:(?<=[。！？])|(?<=[。！？][”’」』）]))(?![”’」』）])"  # CJK end mark, no space needed
    r"|\n\s*\n")                                            # a blank line
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_PLACEHOLDER = re.compile(r"\{\{(TITLE|DATA|VIS_JS)\}\}")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (ends: ``. ! ?`` before a space, ``。！？``, blank lines), each
    one line of cleaned text."""
    return [s for s in (clean_text(p) for p in _SENTENCE_BOUNDARY.split(text)) if s]


def json_for_script(value: Any) -> str:
    """JSON that is safe as the text of a ``<script>`` element: ``<``, ``>``, ``&``, U+2028
    and U+2029 are written as ``\\u`` escapes, so no ``</script>`` or ``<!--`` can occur."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def cap_message(total: int, max_nodes: int) -> str | None:
    """The notice shown (and printed by the CLI) when the page leaves entities out."""
    if total <= max_nodes:
        return None
    return (f"showing {max_nodes:,} of {total:,} entities, the most connected; "
            "use kg query/kg load for the rest")


def degrees(graph: Graph) -> Counter:
    """Entity id → number of distinct (head, relation, tail) edges it is an end of."""
    deg: Counter = Counter()
    for head, _, tail in {(e.head, e.relation, e.tail) for e in graph.edges}:
        deg[head] += 1
        if tail != head:
            deg[tail] += 1
    return deg


def top_entities(graph: Graph, max_nodes: int) -> list[EntityNode]:
    """The ``max_nodes`` entities with most edges (ties: more documents, then name)."""
    deg = degrees(graph)
    ranked = sorted(graph.entities.values(), key=lambda e: (-deg[e.id], -len(e.docs), e.name, e.id))
    return ranked[:max(max_nodes, 0)]


def type_colors(nodes: Iterable[EntityNode]) -> dict[str | None, str]:
    """A colour per entity type, most frequent types first; no type is grey (where no entity
    has a type, all are the first colour: grey would single out nothing)."""
    counts = Counter(n.type for n in nodes if n.type)
    colors: dict[str | None, str] = {}
    for i, (t, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))):
        colors[t] = PALETTE[i] if i < len(PALETTE) else f"hsl({(i * 137.508) % 360:.0f}, 55%, 60%)"
    colors[None] = NO_TYPE_COLOR if counts else PALETTE[0]
    return colors


def triple_count(graph: Graph) -> int:
    """Triples in the graph's file, repeats included (what ``kg build`` counted); a graph
    made in code counts its edges."""
    return graph.triples or len(graph.edges)


@dataclass
class SentenceIndex:
    """Sentences of the documents, looked up by the names that must all occur in one."""
    sentences: dict[str, list[tuple[str, str]]]  # doc id → [(sentence, its casefolded form)]

    @classmethod
    def of(cls, documents: Iterable[Document], wanted: set[str]) -> SentenceIndex:
        sentences = {}
        for doc in documents:
            doc_id = clean_text(doc.id)
            if doc_id in wanted and doc_id not in sentences:
                sentences[doc_id] = [(s, s.casefold()) for s in split_sentences(doc.text)]
        return cls(sentences)

    def find(self, doc_id: str, names: Iterable[str]) -> list[str]:
        keys = [n.casefold() for n in names]
        found = [s for s, folded in self.sentences.get(doc_id, ()) if all(k in folded for k in keys)]
        return [s if len(s) <= MAX_SENTENCE_CHARS else s[:MAX_SENTENCE_CHARS - 1] + "…"
                for s in found[:MAX_SENTENCES_PER_DOC]]

    def sources(self, docs: Iterable[str], names: Iterable[str]) -> dict[str, list[str]]:
        names = list(names)
        out = {}
        for d in sorted(docs):
            if d in self.sentences:
                out[d] = self.find(d, names)
                if len(out) == MAX_DOCS_WITH_SENTENCES:
                    break
        return out


def _docs_fields(docs: Iterable[str]) -> dict[str, Any]:
    docs = sorted(docs)
    return {"docs": docs[:MAX_DOC_IDS], "moreDocs": max(len(docs) - MAX_DOC_IDS, 0)}


def page_data(graph: Graph, documents: Iterable[Document] | None = None,
              max_nodes: int = DEFAULT_MAX_NODES) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data."""
    kept = top_entities(graph, max_nodes)
    ids = {n.id for n in kept}
    colors = type_colors(kept)
    deg = degrees(graph)
    merged: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    sure: dict[tuple[str, str, str], float] = {}  # highest confidence over its documents
    for e in graph.edges:
        if e.head in ids and e.tail in ids:
            merged[(e.head, e.relation, e.tail)].add(e.doc_id)
            if e.confidence is not None:
                sure[(e.head, e.relation, e.tail)] = max(e.confidence, sure.get((e.head, e.relation, e.tail), 0.0))
    index = None
    if documents is not None:
        wanted = {d for n in kept for d in n.docs} | {d for ds in merged.values() for d in ds}
        index = SentenceIndex.of(documents, wanted)
    name = {n.id: n.name for n in kept}
    nodes = []
    for n in kept:
        node = {"id": n.id, "name": n.name, "type": n.type, "degree": deg[n.id], "confidence": n.confidence,
                **_docs_fields(n.docs)}
        if index is not None:
            node["sentences"] = index.sources(n.docs, [n.name])
        nodes.append(node)
    edges = []
    for i, ((head, relation, tail), docs) in enumerate(sorted(merged.items())):
        edge = {"id": f"r{i}", "from": head, "to": tail, "relation": relation,
                "confidence": sure.get((head, relation, tail)), **_docs_fields(docs)}
        if index is not None:
            edge["sentences"] = index.sources(docs, {name[head], name[tail]})
        edges.append(edge)
    shown_types = Counter(n.type for n in kept)
    # typed: some entity has a type (RE triples carry their ends' types only where the schema
    # gave head_type / tail_type); untyped, the legend is empty rather than "(no type)" × all
    typed = any(n.type for n in graph.entities.values())
    legend = [{"type": t, "color": c, "count": shown_types[t]} for t, c in colors.items()
              if shown_types[t] and typed]
    return {"nodes": nodes, "edges": edges, "legend": legend, "typed": typed, "noTypeColor": colors[None],
            "total": len(graph.entities), "totalEdges": len({(e.head, e.relation, e.tail) for e in graph.edges}),
            "triples": triple_count(graph), "documents": len(graph.docs),
            "message": cap_message(len(graph.entities), max_nodes), "withDocuments": documents is not None}


@lru_cache(maxsize=None)
def _static(name: str) -> str:
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


def vis_network_js() -> str:
    """The vendored library, ready to inline (its source-map comment dropped)."""
    js = re.sub(r"\n//# sourceMappingURL=\S*\s*$", "\n", _static("vis-network.min.js"))
    if re.search(r"</script|<!--", js, re.IGNORECASE):
        raise ValueError("vis-network.min.js cannot be inlined: it contains </script or <!--")
    return js


def to_html(graph: Graph, documents: Iterable[Document] | None = None,
            max_nodes: int = DEFAULT_MAX_NODES, title: str = "Knowledge graph") -> str:
    """The page; ``documents`` (as from :func:`~ie_service.kg.build.read_documents`) adds
    source sentences."""
    values = {"TITLE": html.escape(title), "DATA": json_for_script(page_data(graph, documents, max_nodes)),
              "VIS_JS": vis_network_js()}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _static("view.html"))

