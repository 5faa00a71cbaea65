"""``ie-service kg``: build a knowledge graph from documents (through ``/extract/re``), export it,
load it into an embedded graph store and query it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import jsonl
from ..errors import UserInputError
from . import arg_types
from .common import UsageError, add_client_arguments, read_json, service_url


def cmd_kg_build(args: argparse.Namespace) -> int:
    from ..kg.build import build, read_documents, resume_state

    if args.schema:
        schema = read_json(args.schema)
    elif args.relations:
        schema = [r.strip() for r in args.relations.split(",") if r.strip()]
    else:
        raise UsageError("give --schema FILE or --relations a,b,c")
    docs = list(read_documents(args.input, args.id_field, args.text_field))
    if args.limit is not None:
        docs = docs[: args.limit]
    request = {"schema": schema, "constrained": not args.free, "language": args.language,
               "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    if args.min_confidence:
        request["min_confidence"] = args.min_confidence
    if not docs:
        raise UserInputError("no documents to process")
    jsonl.check_unique([d.id for d in docs])
    out = Path(args.out)
    resume_state(out)  # a bad --out is an error before any service starts
    with service_url(args, out.with_suffix(".server.log")) as url:
        counts = build(url, docs, request, out, concurrency=args.concurrency, api_key=args.api_key)
    print(json.dumps(counts))
    if counts["cut_lines"]:
        print(jsonl.cut_warning(out), file=sys.stderr)
    if counts["failed"]:
        print(f"error: {counts['failed']} document(s) failed (not written); rerun the same command "
              "to retry them", file=sys.stderr)
        return 1
    return 0


def cmd_kg_export(args: argparse.Namespace) -> int:
    from ..kg.export import export
    from ..kg.graph import load_graph

    html = args.format == "html"
    if not html and (args.documents or args.max_nodes is not None):
        raise UsageError("--documents and --max-nodes are for --format html")
    max_nodes = 500 if args.max_nodes is None else args.max_nodes
    _check_export_out(Path(args.out), folder=args.format == "neo4j-csv")
    graph = load_graph(args.triples)
    documents = None
    if html and args.documents:
        from ..kg.build import read_documents

        documents = read_documents(args.documents, args.id_field, args.text_field)
    for path in export(graph, args.format, Path(args.out), documents=documents, max_nodes=max_nodes):
        print(path)
    distinct = len({(e.head, e.relation, e.tail) for e in graph.edges})
    print(f"{len(graph.entities)} entities, {graph.triples} triples ({distinct} distinct edges), "
          f"{len(graph.docs)} documents")
    if html:
        from ..kg.html_view import cap_message

        message = cap_message(len(graph.entities), max_nodes)
        if message:
            print(message)
    return 0


def _check_export_out(out: Path, folder: bool) -> None:
    """``--out`` of ``kg export``: a file in a folder that exists; for neo4j-csv a folder
    (made if missing), not a file."""
    if folder:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: is a file; neo4j-csv writes a folder of CSV files")
        if not out.parent.is_dir():
            raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
        return
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder, expected a file")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")


def _store_spec(text: str):
    from ..kg.stores import parse_store_spec

    try:
        return parse_store_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_kg_load(args: argparse.Namespace) -> int:
    from ..kg.graph import load_graph
    from ..kg.stores import open_store

    graph = load_graph(args.triples)
    store = open_store(args.store)
    try:
        counts = store.load(graph)
    finally:
        store.close()
    print(counts.model_dump_json())
    return 0


def cmd_kg_query(args: argparse.Namespace) -> int:
    from ..kg.stores import open_store

    store = open_store(args.store, read_only=True)
    try:
        rows = store.query(args.query)
    finally:
        store.close()
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    kg = sub.add_parser("kg", help="build a knowledge graph from documents, export it",
                        description="Knowledge-graph construction over document collections.")
    ops = kg.add_subparsers(dest="op", required=True, metavar="OP")
    b = ops.add_parser("build", help="extract triples from documents (resumable)",
                       description="Send every document to /extract/re with bounded concurrency; "
                                   "append one JSON line per finished document to --out. Rerun with "
                                   "the same --out to resume: finished documents are skipped.")
    b.add_argument("--input", nargs="+", required=True,
                   help="JSONL files ({id, text} per line), text files, or folders of them")
    b.add_argument("--out", required=True, type=arg_types.resumable_output,
                   help="triples JSONL (appended; resumes)")
    b.add_argument("--schema", help="JSON file with the RE schema")
    b.add_argument("--relations", help="comma-separated relation names (instead of --schema)")
    b.add_argument("--id-field", default="id", help="JSONL input: the field holding the id")
    b.add_argument("--text-field", default="text", help="JSONL input: the field holding the text")
    add_client_arguments(b)
    b.add_argument("--concurrency", type=arg_types.positive_int, default=None,
                   help="requests in flight (default: 16 per engine replica of the service, "
                        "from /v1/models: a --data-parallel-size 2 service gets 32)")
    b.add_argument("--limit", type=arg_types.positive_int, default=None, help="first N documents")
    b.add_argument("--free", action="store_true", help="unconstrained decoding")
    b.add_argument("--language", default="auto", choices=["auto", "en", "zh"],
                   help="prompt language (auto: by the text)")
    b.add_argument("--max-tokens", type=arg_types.positive_int, default=384,
                   help="answer length limit per prompt (a longer answer is discarded)")
    b.add_argument("--min-confidence", type=arg_types.unit_float, default=0.0,
                   help="leave out triples whose confidence (0..1) is below this; default 0: keep all")
    b.set_defaults(func=cmd_kg_build)
    e = ops.add_parser("export", help="export triples JSONL as RDF, Neo4j CSV, Cypher or an HTML view")
    e.add_argument("--triples", required=True, help="triples JSONL written by kg build")
    e.add_argument("--format", required=True, choices=["turtle", "nt", "neo4j-csv", "cypher", "html"],
                   help="turtle / nt (N-Triples) via rdflib; neo4j-csv: a folder for neo4j-admin "
                        "import; cypher: JSON list of parameterised statements; html: one "
                        "self-contained page to explore the graph in a browser (works offline)")
    e.add_argument("--out", required=True, help="file (folder for neo4j-csv)")
    e.add_argument("--documents", nargs="+", metavar="PATH",
                   help="html: the documents the triples came from (as kg build --input: JSONL "
                        "{id, text} files, text files, folders), to show source sentences")
    e.add_argument("--id-field", default="id", help="html: id field of --documents JSONL")
    e.add_argument("--text-field", default="text", help="html: text field of --documents JSONL")
    e.add_argument("--max-nodes", type=arg_types.positive_int, default=None,
                   help="html: show at most this many entities, the most connected (default 500)")
    e.set_defaults(func=cmd_kg_export)
    store_help = ("oxigraph:PATH (RDF store, SPARQL) or ladybug:PATH (property graph, Cypher); "
                  "created by load")
    lo = ops.add_parser("load", help="load triples JSONL into an embedded graph store",
                        description="Replace the store's content by the graph of --triples (clear, then "
                                    "load the project's own export: N-Triples for oxigraph, the "
                                    "parameterised Cypher for ladybug). Prints the counts as JSON.")
    lo.add_argument("--triples", required=True, help="triples JSONL written by kg build")
    lo.add_argument("--store", required=True, type=_store_spec, metavar="KIND:PATH", help=store_help)
    lo.set_defaults(func=cmd_kg_load)
    q = ops.add_parser("query", help="query a loaded store (SPARQL or Cypher); rows as JSON lines",
                       description="Run a read-only query: SPARQL for oxigraph, Cypher for ladybug. "
                                   "One JSON object a row.")
    q.add_argument("--store", required=True, type=_store_spec, metavar="KIND:PATH", help=store_help)
    q.add_argument("query", help="SPARQL (oxigraph) or Cypher (ladybug)")
    q.set_defaults(func=cmd_kg_query)
