"""``ie-service kg``: build a knowledge graph from documents (through ``/extract/re``), export it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import UsageError, add_client_arguments, read_json, service_url


def cmd_kg_build(args: argparse.Namespace) -> int:
    from ..kg.build import build, read_documents

    if args.schema:
        schema = read_json(args.schema)
    elif args.relations:
        schema = [r.strip() for r in args.relations.split(",") if r.strip()]
    else:
        raise UsageError("give --schema FILE or --relations a,b,c")
    docs = list(read_documents(args.input, args.id_field, args.text_field))
    if args.limit:
        docs = docs[: args.limit]
    request = {"schema": schema, "constrained": not args.free, "language": args.language,
               "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    out = Path(args.out)
    with service_url(args, out.with_suffix(".server.log")) as url:
        counts = build(url, docs, request, out, concurrency=args.concurrency, api_key=args.api_key)
    print(json.dumps(counts))
    return 1 if counts["failed"] else 0


def cmd_kg_export(args: argparse.Namespace) -> int:
    from ..kg.export import export
    from ..kg.graph import load_graph

    graph = load_graph(args.triples)
    for path in export(graph, args.format, Path(args.out)):
        print(path)
    print(f"{len(graph.entities)} entities, {len(graph.edges)} relations, {len(graph.docs)} documents")
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
    b.add_argument("--out", required=True, help="triples JSONL (appended; resumes)")
    b.add_argument("--schema", help="JSON file with the RE schema")
    b.add_argument("--relations", help="comma-separated relation names (instead of --schema)")
    b.add_argument("--id-field", default="id")
    b.add_argument("--text-field", default="text")
    add_client_arguments(b)
    b.add_argument("--concurrency", type=int, default=4)
    b.add_argument("--limit", type=int, default=None)
    b.add_argument("--free", action="store_true", help="unconstrained decoding")
    b.add_argument("--language", default="auto", choices=["auto", "en", "zh"])
    b.add_argument("--max-tokens", type=int, default=384)
    b.set_defaults(func=cmd_kg_build)
    e = ops.add_parser("export", help="export triples JSONL as RDF, Neo4j CSV or Cypher")
    e.add_argument("--triples", required=True)
    e.add_argument("--format", required=True, choices=["turtle", "nt", "neo4j-csv", "cypher"],
                   help="turtle / nt (N-Triples) via rdflib; neo4j-csv: a folder for neo4j-admin "
                        "import; cypher: JSON list of parameterised statements")
    e.add_argument("--out", required=True, help="file (folder for neo4j-csv)")
    e.set_defaults(func=cmd_kg_export)
