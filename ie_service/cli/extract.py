"""``ie-service extract``: extraction from the command line, through :mod:`ie_service.client`.

* ``ie-service extract --task ner --schema person,location "TEXT"``: the records, one JSON
  object a line (warnings on stderr);
* ``-i FILE [-o OUT.jsonl]``: every text of a file (``.txt``: one a line; ``.jsonl`` /
  ``.ndjson``, any case: ``{"id", "text"}`` a line, ids unique), with a progress bar; a line
  per finished text is appended to ``OUT`` and a rerun skips the ids already there
  (resumable through :mod:`ie_service.jsonl`, like ``kg build`` and ``eval``);
* ``--interactive``: a prompt loop, one text a line.

``--url`` names a running service; without it one is started here (minutes on a CPU)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..extraction.schema import SchemaError
from ..extraction.tasks import TASKS
from ..extraction.wire import task_models
from ..errors import BadInputFile, UserInputError, one_line
from .. import jsonl
from .common import UsageError, add_client_arguments, check_engine_flags_unused, read_json, service_url
from . import arg_types


def parse_schema(task: str, raw: str) -> Any:
    """``a,b,c``, inline JSON, or a ``.json`` file; checked by the task before any request."""
    text = raw.strip()
    if text[:1] in ("[", "{"):
        try:
            schema = jsonl.loads(text)
        except ValueError as exc:
            raise UserInputError(f"--schema is not valid JSON: {exc}") from None
    elif text.endswith(".json"):
        schema = read_json(text)
    else:
        schema = [label.strip() for label in text.split(",") if label.strip()]
    try:
        task_models(TASKS[task]).request.model_validate({"text": "x", "schema": schema})
        TASKS[task].labels(schema)
    except ValidationError as exc:
        shape = TASKS[task].schema_help or "; ".join(e["msg"] for e in exc.errors()[:3])
        raise UserInputError(f"--schema does not fit --task {task}: {one_line(shape)}") from None
    except (SchemaError, TypeError, ValueError) as exc:
        raise UserInputError(f"--schema: {one_line(exc)}") from None
    return schema


def read_texts(path: Path, id_field: str, text_field: str) -> list[tuple[str, str]]:
    """``(id, text)`` pairs: a ``.txt`` file's non-empty lines (id = line number) or a JSON
    lines file's objects (``.jsonl`` / ``.ndjson`` in any case, as ``kg build`` reads them).
    Ids must be unique: a resume skips the ids already written."""
    if not path.is_file():
        raise BadInputFile(path, "no such file")
    if jsonl.is_jsonl_name(path):
        from ..kg.build import read_documents

        texts = [(d.id, d.text) for d in read_documents([str(path)], id_field, text_field)]
        jsonl.check_unique([i for i, _ in texts], "text")
        return texts
    if path.suffix.lower() != ".txt":
        raise BadInputFile(path, "expected a .txt (one text a line), .jsonl or .ndjson file")
    try:
        lines = jsonl.read_bytes(path).decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BadInputFile(path, f"not UTF-8 (byte {exc.start})") from None
    texts = [(str(n), line) for n, line in enumerate(lines, 1) if line.strip()]
    if not texts:
        raise BadInputFile(path, "no texts (the file is empty)")
    return texts


def done_ids(out: Path) -> tuple[set[str], int]:
    """(ids already in ``out``, cut last lines: 0 or 1). A cut last line (killed mid-write)
    is redone; any other line that is not a record of ours is an error naming it."""
    lines = jsonl.read_json_lines(out, what="an object with id", missing_ok=True)
    ids = set()
    for n, rec in lines.records:
        if not isinstance(rec.get("id"), str):
            raise BadInputFile(out, "not an extract record (expected a string id); is -o another file?", line=n)
        ids.add(rec["id"])
    return ids, lines.cut


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"language": args.language, "constrained": not args.free,
                               "max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.template:
        options["template"] = args.template
    if args.min_confidence:
        options["min_confidence"] = args.min_confidence
    return options


def _records(task: str, result: Any) -> list[dict]:
    return [r.model_dump() for r in getattr(result, TASKS[task].records_field)]


def _print_result(task: str, result: Any) -> None:
    for record in _records(task, result):
        print(json.dumps(record, ensure_ascii=False), flush=True)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _refused(exc: Exception) -> bool:
    """The service refused the text itself (too large, invalid): no rerun will help."""
    from ..client import IEStatusError

    return isinstance(exc, IEStatusError) and exc.status in (400, 413, 422)


def _fatal(exc: Exception) -> bool:
    """Errors no other text will avoid: stop the run instead of failing every text."""
    from ..client import IEStatusError

    return isinstance(exc, IEStatusError) and exc.status in (401, 403, 404)


async def _run_file(url: str, args: argparse.Namespace, schema: Any, texts: list[tuple[str, str]],
                    out: Path | None, seen: set[str]) -> dict[str, int]:
    """Extract every text whose id is not in ``seen``; a line per finished text is appended
    to ``out`` (stdout if None)."""
    from tqdm import tqdm

    from ..client import AsyncIEClient, IEError

    todo = [(i, t) for i, t in texts if i not in seen]
    counts = {"texts": len(texts), "done": 0, "skipped": len(texts) - len(todo), "failed": 0, "refused": 0,
              "records": 0}
    sem = asyncio.Semaphore(args.concurrency)
    bar = tqdm(total=len(texts), initial=counts["skipped"], desc=f"extract {args.task}", unit="text",
               file=sys.stderr)
    sink = jsonl.open_for_append(out) if out else sys.stdout
    try:
        async with AsyncIEClient(url, api_key=args.api_key) as client:
            async def one(text_id: str, text: str) -> None:
                async with sem:
                    try:
                        result = await client.extract(args.task, text, schema, **_options(args))
                    except IEError as exc:
                        if _fatal(exc):
                            raise UserInputError(one_line(exc)) from None
                        refused = _refused(exc)
                        counts["refused" if refused else "failed"] += 1
                        why = ("the service refuses this text: a rerun fails the same way" if refused
                               else "a rerun retries it")
                        bar.write(f"{text_id}: {one_line(exc)} (not written; {why})", file=sys.stderr)
                        bar.update()
                        return
                records = _records(args.task, result)
                jsonl.append(sink, {"id": text_id, TASKS[args.task].records_field: records,
                                    "warnings": result.warnings})
                counts["done"] += 1
                counts["records"] += len(records)
                bar.update()

            await asyncio.gather(*(one(i, t) for i, t in todo))
    finally:
        bar.close()
        if out:
            sink.close()
    return counts


def _interactive(url: str, args: argparse.Namespace, schema: Any) -> int:
    from ..client import IEClient, IEError

    print(f"{args.task} with schema {json.dumps(schema, ensure_ascii=False)}; one text a line, "
          "an empty line or Ctrl-D ends", file=sys.stderr)
    with IEClient(url, api_key=args.api_key) as client:
        while True:
            try:
                text = input(f"{args.task}> ")
            except (EOFError, KeyboardInterrupt):
                print(file=sys.stderr)
                return 0
            except UnicodeDecodeError as exc:
                raise UserInputError(f"standard input is not UTF-8 text (byte {exc.start} of the line)") from None
            if not text.strip():
                return 0
            try:
                _print_result(args.task, client.extract(args.task, text, schema, **_options(args)))
            except IEError as exc:
                print(f"error: {one_line(exc)}", file=sys.stderr)


def _log_path(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out).with_suffix(".server.log")
    return Path(tempfile.gettempdir()) / "ie-service-extract.server.log"


def _file_exit(counts: dict[str, int], out: Path | None, cut: int) -> int:
    """``-i``'s exit code, with one ``error:`` line when texts were not written: 1 when a
    rerun may do them (the service failed), 2 when the service refused them as input."""
    if cut:
        print(jsonl.cut_warning(out), file=sys.stderr)
    if counts["failed"]:
        print(f"error: {counts['failed'] + counts['refused']} text(s) not written; rerun the same command "
              "to retry the failed ones", file=sys.stderr)
        return 1
    if counts["refused"]:
        print(f"error: the service refused {counts['refused']} text(s) as input (too large or invalid, "
              "see above); a rerun fails the same way", file=sys.stderr)
        return 2
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from ..client import IEError, IEStatusError

    modes = sum((bool(args.text), args.input is not None, args.interactive))
    if modes != 1:
        raise UsageError("give a TEXT, -i FILE or --interactive (one of them)")
    if args.out and not args.input:
        raise UsageError("-o/--out goes with -i/--input")
    check_engine_flags_unused(args)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    schema = parse_schema(args.task, args.schema)
    texts = read_texts(Path(args.input), args.id_field, args.text_field) if args.input else None
    out = Path(args.out) if args.out else None
    seen, cut = done_ids(out) if out else (set(), 0)  # a bad -o file: an error before any service starts
    if not args.url:
        print("starting a local service (give --url to use a running one)...", file=sys.stderr)
    with service_url(args, _log_path(args)) as url:
        if args.interactive:
            return _interactive(url, args, schema)
        if texts is not None:
            counts = asyncio.run(_run_file(url, args, schema, texts, out, seen))
            print(json.dumps(counts), file=sys.stderr)
            return _file_exit(counts, out, cut)
        from ..client import IEClient

        with IEClient(url, api_key=args.api_key) as client:
            try:
                result = client.extract(args.task, " ".join(args.text), schema, **_options(args))
            except IEStatusError as exc:
                if exc.status < 500:  # the request: the user's to fix
                    raise UserInputError(one_line(exc.message)) from None
                print(f"error: {one_line(exc)}", file=sys.stderr)
                return 1
            except IEError as exc:  # the service could not be reached
                print(f"error: {one_line(exc)}", file=sys.stderr)
                return 1
        _print_result(args.task, result)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="extract from a text, a file of texts, or interactively",
                       description="Run /extract/{task} through a service (--url) or one started here. "
                                   "Records are printed one JSON object a line. With -i FILE -o OUT.jsonl "
                                   "a line per finished text is appended to OUT; rerun to resume.")
    p.add_argument("text", nargs="*", help="the text (words are joined with spaces)")
    p.add_argument("--task", required=True, choices=list(TASKS), help="what to extract")
    p.add_argument("--schema", required=True,
                   help="labels a,b,c, inline JSON ('{\"质押\": [\"质押方\"]}'), or a .json file")
    p.add_argument("-i", "--input", default=None, help=".txt (one text a line) or .jsonl ({id, text} a line)")
    p.add_argument("-o", "--out", type=arg_types.resumable_output, default=None, help="JSONL to append results to (resumes); default: stdout")
    p.add_argument("--interactive", action="store_true", help="a prompt loop: one text a line")
    p.add_argument("--id-field", default="id", help="-i JSONL: the field holding the id")
    p.add_argument("--text-field", default="text", help="-i JSONL: the field holding the text")
    p.add_argument("--language", default="auto", choices=["auto", "en", "zh"],
                   help="prompt language (auto: by the text)")
    p.add_argument("--template", default=None, help="template name, or name@version to pin one")
    p.add_argument("--free", action="store_true", help="unconstrained decoding")
    p.add_argument("--max-tokens", type=arg_types.positive_int, default=384,
                   help="answer length limit per prompt (a longer answer is discarded)")
    p.add_argument("--temperature", type=arg_types.non_negative_float, default=0.0, help="sampling temperature (0: greedy)")
    p.add_argument("--concurrency", type=arg_types.positive_int, default=8, help="requests in flight with -i")
    p.add_argument("--min-confidence", type=arg_types.unit_float, default=0.0,
                   help="leave out records whose confidence (0..1) is below this; default 0: keep all")
    add_client_arguments(p)
    p.set_defaults(func=cmd_extract)
