"""Resumable batch client: documents in, one JSONL line of triples per document out.

A document's line is written (and flushed) only when its extraction is complete, so an
interrupted run resumes by skipping the ids already in the output: nothing is lost and
nothing is written twice. A line cut by a kill is moved aside before the resume appends
(:mod:`ie_service.jsonl`), so the output stays a file ``kg export`` reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from tqdm import tqdm

from .. import jsonl
from ..client import AsyncIEClient, IEClient, IEConnectionError, IEError, IEStatusError
from ..errors import BadInputFile, UserInputError


class Document(BaseModel):
    id: str
    text: str


def read_documents(paths: list[str], id_field: str = "id", text_field: str = "text") -> Iterator[Document]:
    """JSON lines files (one ``{id, text}`` object a line: named ``.jsonl`` / ``.ndjson`` in
    any case, or any file whose every line is a JSON object) and text files (one document
    each, id = file name); a folder stands for the files in it. A line or file that cannot
    be used raises :class:`BadInputFile` naming the file and line."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BadInputFile(path, "no such file or folder")
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        if not files:
            raise BadInputFile(path, "folder has no files")
        for f in files:
            try:
                data = f.read_bytes()
            except OSError as exc:
                raise BadInputFile(f, exc.strerror or str(exc)) from None
            if jsonl.is_jsonl_name(f) or jsonl.looks_like_json_lines(data):
                yield from _jsonl_documents(f, data, id_field, text_field)
            elif f.suffix.lower() == ".json":
                raise BadInputFile(f, "expected JSON lines (one {id, text} object a line), "
                                      "or a text file not named .json")
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BadInputFile(f, f"not UTF-8 (byte {exc.start})",
                                       line=data.count(b"\n", 0, exc.start) + 1) from None
                yield Document(id=f.name, text=text)


def _jsonl_documents(f: Path, data: bytes, id_field: str, text_field: str) -> Iterator[Document]:
    if not data.strip():
        raise BadInputFile(f, "no documents (the file is empty)")
    for n, obj in jsonl.parse_json_lines(f, data, strict=True).records:
        if text_field not in obj:
            raise BadInputFile(f, f"no {text_field!r} field", line=n)
        text = obj[text_field]
        if not isinstance(text, str):
            raise BadInputFile(f, f"{text_field!r} must be a string, got {type(text).__name__}", line=n)
        doc_id = obj.get(id_field, f"{f.stem}:{n}")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            raise BadInputFile(f, f"{id_field!r} must be a string or an integer, got {type(doc_id).__name__}",
                               line=n)
        yield Document(id=str(doc_id), text=text)


def resume_state(out: Path) -> tuple[set[str], int]:
    """(ids already written, cut last lines skipped: 0 or 1). A cut last line (killed
    mid-write) is redone; any other line that is not a record is an error naming it."""
    if out.is_dir():
        raise BadInputFile(out, "is a folder, expected the triples JSONL file")
    lines = jsonl.read_json_lines(out, what="an object with doc_id and triples", missing_ok=True)
    ids = set()
    for n, rec in lines.records:
        doc_id = rec.get("doc_id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)) or "triples" not in rec:
            raise BadInputFile(out, "not a kg build record (expected doc_id and triples); "
                                    "is --out another file?", line=n)
        ids.add(str(doc_id))
    return ids, lines.cut


def done_ids(out: Path) -> set[str]:
    """Ids already written (see :func:`resume_state`)."""
    return resume_state(out)[0]


async def _build(url: str, docs: list[Document], request: dict[str, Any], out: Path,
                 concurrency: int, api_key: str | None, total: int) -> dict[str, int]:
    sem = asyncio.Semaphore(concurrency)
    counts = {"docs": 0, "triples": 0, "failed": 0}
    bar = tqdm(total=total, initial=total - len(docs), desc="kg build", unit="doc")
    out.parent.mkdir(parents=True, exist_ok=True)
    # the client retries 429/503 (Retry-After) and connection failures, bounded
    async with AsyncIEClient(url, api_key=api_key, timeout=900, max_connections=concurrency) as client:
        with jsonl.open_for_append(out) as sink:
            async def one(doc: Document) -> None:
                async with sem:
                    try:
                        result = await client.re(doc.text, **request)
                    except IEConnectionError as exc:
                        counts["failed"] += 1
                        bar.write(f"{doc.id}: {exc} (not written; a rerun retries it)")
                        bar.update()
                        return
                    except IEStatusError as exc:
                        counts["failed"] += 1
                        bar.write(f"{doc.id}: HTTP {exc.status}: {exc.message[:200]}")
                        bar.update()
                        return
                body = result.model_dump()
                jsonl.append(sink, {"doc_id": doc.id, "triples": body["triples"],
                                    "warnings": body["warnings"]})
                counts["docs"] += 1
                counts["triples"] += len(body["triples"])
                bar.update()

            await asyncio.gather(*(one(d) for d in docs))
    bar.close()
    return counts


# requests in flight per engine replica: on one CPU engine 8 beat 4 by 1.6x and 16 beat 8
# by 1.4x (benchmarks/bench_kg_dp.py); an interrupted run redoes at most these
PER_REPLICA = 16


def service_replicas(url: str, api_key: str | None = None) -> int:
    """Engine replicas behind ``url`` (``replicas`` of ``GET /v1/models``; 1 for a service
    that does not say, such as another KnowLM-compatible server)."""
    try:
        with IEClient(url, api_key=api_key, timeout=30, retries=1) as client:
            replicas = client.request("GET", "/v1/models")["data"][0].get("replicas", 1)
    except (IEError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return 1
    return replicas if isinstance(replicas, int) and replicas >= 1 else 1


def build(url: str, documents: list[Document], request: dict[str, Any], out: Path,
          concurrency: int | None = None, api_key: str | None = None) -> dict[str, int]:
    """Extract triples for every document not yet in ``out``; returns counts of this run
    (``cut_lines``: a cut last line found in ``out``, moved aside and its document redone).
    ``concurrency`` (requests in flight) defaults to ``PER_REPLICA`` per engine replica of
    the service, so a data-parallel service gets every replica busy."""
    seen, cut = resume_state(out)
    ids = [d.id for d in documents]
    if not ids:
        raise UserInputError("no documents to process")
    jsonl.check_unique(ids)
    todo = [d for d in documents if d.id not in seen]
    if concurrency is None:
        concurrency = PER_REPLICA * service_replicas(url, api_key)
    counts = asyncio.run(_build(url.rstrip("/"), todo, request, out, concurrency, api_key, len(documents)))
    counts["skipped"] = len(documents) - len(todo)
    counts["cut_lines"] = cut
    counts["concurrency"] = concurrency
    return counts
