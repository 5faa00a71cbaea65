"""Resumable batch client: documents in, one JSONL line of triples per document out.

A document's line is written (and flushed) only when its extraction is complete, so an
interrupted run resumes by skipping the ids already in the output: nothing is lost and
nothing is written twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel
from tqdm import tqdm


class Document(BaseModel):
    id: str
    text: str


def read_documents(paths: list[str], id_field: str = "id", text_field: str = "text") -> Iterator[Document]:
    """JSONL files (one ``{id, text}`` object a line) and text files (one document each,
    id = file name); a folder stands for the files in it."""
    for raw in paths:
        path = Path(raw)
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.suffix == ".jsonl":
                for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    if text_field not in obj:
                        raise ValueError(f"{f}:{n}: no {text_field!r} field")
                    yield Document(id=str(obj.get(id_field, f"{f.stem}:{n}")), text=obj[text_field])
            else:
                yield Document(id=f.name, text=f.read_text(encoding="utf-8"))


def done_ids(out: Path) -> set[str]:
    """Ids already written; a torn last line (killed mid-write) is ignored and redone."""
    ids = set()
    if out.is_file():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                ids.add(json.loads(line)["doc_id"])
            except (ValueError, KeyError, TypeError):
                continue
    return ids


async def _build(url: str, docs: list[Document], request: dict[str, Any], out: Path,
                 concurrency: int, api_key: str | None, total: int) -> dict[str, int]:
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    counts = {"docs": 0, "triples": 0, "failed": 0}
    bar = tqdm(total=total, initial=total - len(docs), desc="kg build", unit="doc")
    out.parent.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(timeout=900, headers=headers) as client:
        with out.open("a", encoding="utf-8") as sink:
            async def one(doc: Document) -> None:
                async with sem:
                    try:
                        for attempt in range(5):
                            r = await client.post(f"{url}/extract/re", json={**request, "text": doc.text})
                            if r.status_code not in (429, 503):
                                break
                            await asyncio.sleep(min(2 ** attempt, 10))  # busy server: back off, keep the doc
                    except httpx.TransportError as exc:
                        counts["failed"] += 1
                        bar.write(f"{doc.id}: {exc!r} (not written; a rerun retries it)")
                        bar.update()
                        return
                if r.status_code != 200:
                    counts["failed"] += 1
                    bar.write(f"{doc.id}: HTTP {r.status_code}: {r.text[:200]}")
                else:
                    body = r.json()
                    sink.write(json.dumps({"doc_id": doc.id, "triples": body["triples"],
                                           "warnings": body["warnings"]}, ensure_ascii=False) + "\n")
                    sink.flush()
                    counts["docs"] += 1
                    counts["triples"] += len(body["triples"])
                bar.update()

            await asyncio.gather(*(one(d) for d in docs))
    bar.close()
    return counts


def build(url: str, documents: list[Document], request: dict[str, Any], out: Path,
          concurrency: int = 4, api_key: str | None = None) -> dict[str, int]:
    """Extract triples for every document not yet in ``out``; returns counts of this run."""
    seen = done_ids(out)
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise ValueError("document ids are not unique; resuming needs unique ids")
    todo = [d for d in documents if d.id not in seen]
    counts = asyncio.run(_build(url.rstrip("/"), todo, request, out, concurrency, api_key, len(documents)))
    counts["skipped"] = len(documents) - len(todo)
    return counts
