"""``ie-service`` command line: serve, and the tools around the service."""

from __future__ import annotations

import argparse
import logging
import sys

from .engine_config import EngineConfig


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that build an :class:`EngineConfig` (shared by serve, eval, kg)."""
    g = parser.add_argument_group("engine")
    g.add_argument("--model", default=None,
                   help="model folder (HF layout, safetensors). Default: the embedded "
                        "SmolLM2-135M-Instruct, converted once into ~/.cache/ie-service")
    g.add_argument("--tokenizer", default=None, help="tokenizer folder if not the model's")
    g.add_argument("--served-model-name", default=None, help="name reported by /v1/models")
    g.add_argument("--tensor-parallel-size", "-tp", type=int, default=1,
                   help="shard the model over N devices (or N CPU workers)")
    g.add_argument("--dtype", default="auto", help="auto | bfloat16 | float16 | float32")
    g.add_argument("--max-model-len", type=int, default=2048, help="context length in tokens")
    g.add_argument("--max-num-batched-tokens", type=int, default=None)
    g.add_argument("--max-num-seqs", type=int, default=None, help="max concurrent sequences")
    g.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="fraction of device memory for weights+KV cache "
                        "(on the CPU backend: of host memory, per worker; default 0.9 on a GPU, "
                        "about 3 GiB per worker on the CPU)")
    g.add_argument("--no-enforce-eager", dest="enforce_eager", action="store_false",
                   help="allow CUDA graphs / compilation (slower start, faster decode on GPU)")
    g.add_argument("--prompt-format", default="auto",
                   help="alpaca (KnowLM/ZhiXi) | ziya | raw | chat | auto | path/to/format.json")


def engine_config_from(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        model=args.model,
        tokenizer=args.tokenizer,
        served_model_name=args.served_model_name,
        dtype=args.dtype,
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=args.enforce_eager,
        prompt_format=args.prompt_format,
    )


def engine_cli_args(config: EngineConfig) -> list[str]:
    """The ``serve`` flags that reproduce ``config`` (to start a server for eval / kg)."""
    out = []
    for name, value in config.model_dump().items():
        flag = "--" + name.replace("_", "-")
        if name == "enforce_eager":
            out += [] if value else ["--no-enforce-eager"]
        elif value is not None and name != "seed":
            out += [flag, str(value)]
    return out


def service_url(args: argparse.Namespace, log_path):
    """Context yielding ``--url``, or the URL of a server started here with the engine flags."""
    from contextlib import nullcontext

    from .testing import running_server

    if args.url:
        return nullcontext(args.url)
    return running_server(engine_cli_args(engine_config_from(args)), log_path=log_path)


def cmd_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .evaluation import datasets, runner
    from .evaluation.scoring import table

    if args.triggers_only and args.task != "ee":
        print("error: --triggers-only needs --task ee", file=sys.stderr)
        return 2
    all_docs = datasets.load(args.dataset, args.format)
    docs = all_docs[args.offset:]
    if args.limit:
        docs = docs[: args.limit]
    if not docs:
        print("error: no documents selected", file=sys.stderr)
        return 2
    schema = datasets.labels_of(all_docs, args.task)
    if args.schema:
        schema = json.loads(Path(args.schema).read_text(encoding="utf-8"))
    body = {"schema": schema, "constrained": not args.free, "language": args.language,
            "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    if args.template:
        body["template"] = args.template
    if args.labels_per_prompt:
        body["labels_per_prompt"] = args.labels_per_prompt
    if args.examples:
        body["examples"] = json.loads(Path(args.examples).read_text(encoding="utf-8"))
    if args.triggers_only:
        body["schema"], examples = runner.triggers_only(schema, body.get("examples", []))
        if examples:
            body["examples"] = examples
    stem = f"{Path(args.dataset).stem}-{args.task}-{'free' if args.free else 'constrained'}"
    if args.triggers_only:
        stem += "-triggers"
    if args.examples:
        stem += "-fewshot"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = Path(args.predictions or out_dir / f"{stem}.predictions.jsonl")
    with service_url(args, out_dir / f"{stem}.server.log") as url:
        report = runner.evaluate(url.rstrip("/"), args.task, docs, body, predictions,
                                 concurrency=args.concurrency, api_key=args.api_key)
    report["dataset"] = args.dataset
    if args.triggers_only:
        report["scores"].pop("arguments", None)
    report_path = Path(args.report or out_dir / f"{stem}.report.json")
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    for kind, scores in report["scores"].items():
        print(table(scores, f"{args.dataset} {args.task} {kind}"))
    print(json.dumps(report["totals"]))
    print(f"report: {report_path}  predictions: {predictions}")
    return 0


def cmd_kg_build(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .kg.build import build, read_documents

    if args.schema:
        schema = json.loads(Path(args.schema).read_text(encoding="utf-8"))
    elif args.relations:
        schema = [r.strip() for r in args.relations.split(",") if r.strip()]
    else:
        print("error: give --schema FILE or --relations a,b,c", file=sys.stderr)
        return 2
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
    from pathlib import Path

    from .kg.export import export
    from .kg.graph import load_graph

    graph = load_graph(args.triples)
    for path in export(graph, args.format, Path(args.out)):
        print(path)
    print(f"{len(graph.entities)} entities, {len(graph.edges)} relations, {len(graph.docs)} documents")
    return 0


def add_kg_parser(sub) -> None:
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
    b.add_argument("--url", default=None, help="a running service; default: start one here")
    b.add_argument("--api-key", default=None)
    b.add_argument("--concurrency", type=int, default=4)
    b.add_argument("--limit", type=int, default=None)
    b.add_argument("--free", action="store_true", help="unconstrained decoding")
    b.add_argument("--language", default="auto", choices=["auto", "en", "zh"])
    b.add_argument("--max-tokens", type=int, default=384)
    add_engine_arguments(b)
    b.set_defaults(func=cmd_kg_build)
    e = ops.add_parser("export", help="export triples JSONL as RDF, Neo4j CSV or Cypher")
    e.add_argument("--triples", required=True)
    e.add_argument("--format", required=True, choices=["turtle", "nt", "neo4j-csv", "cypher"],
                   help="turtle / nt (N-Triples) via rdflib; neo4j-csv: a folder for neo4j-admin "
                        "import; cypher: JSON list of parameterised statements")
    e.add_argument("--out", required=True, help="file (folder for neo4j-csv)")
    e.set_defaults(func=cmd_kg_export)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.app import create_app
    from .engine import Engine

    from .api.settings import ServiceSettings

    config = engine_config_from(args)
    settings = ServiceSettings(
        api_keys=(args.api_key or []) + ServiceSettings.keys_from_env(),
        max_request_bytes=args.max_request_bytes,
        max_outstanding=args.max_outstanding,
        request_timeout_s=args.request_timeout,
    )
    app = create_app(lambda: Engine.start(config), settings=settings)
    # our middleware writes one JSON access line per request; uvicorn's own is off
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from .embedded import ensure_embedded_model

    print(ensure_embedded_model())
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from .weights import diff, md5
    from .weights.shards import WeightsError

    try:
        if args.op == "recover":
            print(diff.recover(args.base, args.diff, args.out, fp16=args.fp16, force=args.force))
        elif args.op == "apply-delta":
            print(diff.apply_delta(args.base, args.delta, args.out, fp16=args.fp16, force=args.force))
        elif args.op == "make-diff":
            print(diff.make_diff(args.base, args.tuned, args.out, force=args.force))
        elif args.op == "merge-lora":
            from .weights.lora import merge_lora

            print(merge_lora(args.base, args.lora, args.out, dtype=args.dtype, force=args.force))
        elif args.op == "md5":
            return _md5(args, md5)
    except (WeightsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _md5(args: argparse.Namespace, md5) -> int:
    if args.expect:
        problems = md5.check(args.dir, md5.read_manifest(args.expect))
        for p in problems:
            print(p, file=sys.stderr)
        print("OK" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    sums = md5.folder_md5(args.dir)
    target = args.write or f"{args.dir}/{md5.MANIFEST}"
    md5.write_manifest(sums, target)
    print(f"wrote {len(sums)} checksums to {target}")
    return 0


def add_weights_parser(sub) -> None:
    w = sub.add_parser("weights", help="recover / apply-delta / make-diff / merge-lora / md5",
                       description="Weight tooling. Works shard by shard (safetensors, lazy "
                                   "loading); output appears only when complete.")
    ops = w.add_subparsers(dest="op", required=True, metavar="OP")
    r = ops.add_parser("recover", help="ZhiXi weight_diff recover: tuned = base + diff")
    r.add_argument("--base", required=True, help="original LLaMA folder")
    r.add_argument("--diff", required=True, help="published diff folder")
    a = ops.add_parser("apply-delta", help="FastChat/Ziya apply_delta: base + delta (vocab may grow)")
    a.add_argument("--base", required=True)
    a.add_argument("--delta", required=True)
    m = ops.add_parser("make-diff", help="diff = tuned - base, float32 (the reverse of recover)")
    m.add_argument("--base", required=True)
    m.add_argument("--tuned", required=True)
    for p in (r, a):
        p.add_argument("--fp16", action="store_true", help="store float16 (computed in float32)")
    lo = ops.add_parser("merge-lora", help="merge a peft LoRA adapter into its base")
    lo.add_argument("--base", required=True)
    lo.add_argument("--lora", required=True)
    lo.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16")
    for p in (r, a, m, lo):
        p.add_argument("--out", required=True, help="output folder (must not exist)")
        p.add_argument("--force", action="store_true", help="replace an existing output folder")
    h = ops.add_parser("md5", help="write or check an MD5 manifest (md5sum format)")
    h.add_argument("dir")
    h.add_argument("--expect", help="manifest to check against (exit 1 on any mismatch)")
    h.add_argument("--write", help="where to write the manifest (default DIR/md5sums.txt)")
    w.set_defaults(func=cmd_weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ie-service",
        description="Instruction-driven information extraction (NER / RE / EE) served by vLLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="start the HTTP service",
                           description="Start the engine and serve /generate, /extract/*, "
                                       "/health on HTTP.")
    add_engine_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in containers)")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--log-level", default="info")
    limits = serve.add_argument_group("limits and access")
    limits.add_argument("--api-key", action="append", default=None,
                        help="require this key on every route (repeatable; also $IE_SERVICE_API_KEYS, "
                             "comma-separated); clients send 'Authorization: Bearer KEY' or 'X-API-Key'")
    limits.add_argument("--max-request-bytes", type=int, default=2 * 1024 * 1024, help="larger bodies: 413")
    limits.add_argument("--max-outstanding", type=int, default=256,
                        help="engine requests in flight + waiting; beyond this: 429 with Retry-After")
    limits.add_argument("--request-timeout", type=float, default=600.0,
                        help="seconds per engine request; beyond: 504 and the generation is aborted")
    serve.set_defaults(func=cmd_serve)

    prep = sub.add_parser("prepare-model",
                          help="convert the embedded SmolLM2 GGUF into the cache, print its path")
    prep.set_defaults(func=cmd_prepare_model)
    add_weights_parser(sub)

    ev = sub.add_parser("eval", help="score extraction on a gold set (P/R/F1, parse failures)",
                        description="Run /extract/{task} over a data set through a service (--url) "
                                    "or a server started here, and score strict P/R/F1 per type. "
                                    "Resumable: predictions are appended to a JSONL file.")
    ev.add_argument("--dataset", required=True,
                    help="wnut17 | crossner-ai | crossner-music | fewfc (from ../shared/data or "
                         "$IE_SERVICE_DATA), or a path to a file of one of those formats")
    ev.add_argument("--format", choices=["bio", "crossner", "fewfc", "jsonl"], default=None,
                    help="file format (default: by name, or sniffed)")
    ev.add_argument("--task", required=True, choices=["ner", "re", "ee"])
    ev.add_argument("--limit", type=int, default=None, help="first N documents (after --offset)")
    ev.add_argument("--offset", type=int, default=0)
    ev.add_argument("--url", default=None, help="a running service; default: start one here")
    ev.add_argument("--api-key", default=None)
    ev.add_argument("--free", action="store_true", help="unconstrained decoding")
    ev.add_argument("--language", default="auto", choices=["auto", "en", "zh"])
    ev.add_argument("--template", default=None)
    ev.add_argument("--schema", default=None, help="JSON file with the schema (default: the data's labels)")
    ev.add_argument("--examples", default=None, help="JSON file: few-shot [{input, output}]")
    ev.add_argument("--labels-per-prompt", type=int, default=None)
    ev.add_argument("--triggers-only", action="store_true",
                    help="EE: ask for event types and triggers, no arguments, and score triggers only")
    ev.add_argument("--max-tokens", type=int, default=256)
    ev.add_argument("--concurrency", type=int, default=8)
    ev.add_argument("--out-dir", default="eval-runs")
    ev.add_argument("--predictions", default=None, help="JSONL of predictions (resumes from it)")
    ev.add_argument("--report", default=None, help="JSON report path")
    add_engine_arguments(ev)
    ev.set_defaults(func=cmd_eval)
    add_kg_parser(sub)
    return parser


def setup_logging() -> None:
    """Text logs for humans; the access log is one JSON object per line (``ie_service.access``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = logging.getLogger("ie_service.access")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('{"ts": "%(asctime)s", "access": %(message)s}'))
    access.addHandler(handler)
    access.propagate = False


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
