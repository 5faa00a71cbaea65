"""Run extraction over a gold set through a service URL, score it, write a report.

Predictions are appended to a JSONL file as they arrive; a rerun with the same file skips
documents already done (resumable)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from ..client import AsyncIEClient, IEStatusError
from ..extraction.tasks import TASKS
from ..gold import GoldDoc
from .scoring import Scorer


async def _predict(url: str, task: str, docs: list[GoldDoc], body: dict[str, Any],
                   out: Path, concurrency: int, api_key: str | None,
                   transport: httpx.AsyncBaseTransport | None = None) -> int:
    done = set()
    if out.is_file():
        done = {json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines() if line.strip()}
    todo = [d for d in docs if d.id not in done]
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(docs), initial=len(docs) - len(todo), desc=f"eval {task}", unit="doc")
    with out.open("a", encoding="utf-8") as sink:
        async with AsyncIEClient(url, api_key=api_key, timeout=600, transport=transport) as client:
            async def one(doc: GoldDoc) -> None:
                async with sem:
                    t = time.perf_counter()
                    try:
                        res = (await client.extract(task, doc.text, **body)).model_dump()
                        error = None
                    except IEStatusError as exc:
                        error = f"{exc.status}: {exc.message[:300]}"
                    seconds = time.perf_counter() - t
                if error is not None:
                    record = {"id": doc.id, "error": error, "seconds": seconds}
                else:
                    record = {"id": doc.id, "pred": TASKS[task].predicted_tuples(res), "stats": res["stats"],
                              "template": res.get("template"), "seconds": seconds}
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                bar.update()

            await asyncio.gather(*(one(d) for d in todo))
    bar.close()
    return len(todo)


def evaluate(url: str, task: str, docs: list[GoldDoc], body: dict[str, Any], predictions: Path,
             concurrency: int = 8, api_key: str | None = None,
             transport: httpx.AsyncBaseTransport | None = None) -> dict:
    """Predict what is missing from ``predictions``, then score everything in it.
    ``transport``: an httpx transport to reach the service by (an in-process app in tests)."""
    t = time.perf_counter()
    new = asyncio.run(_predict(url, task, docs, body, predictions, concurrency, api_key, transport))
    wall = time.perf_counter() - t
    by_id = {}
    for line in predictions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            by_id[rec["id"]] = rec
    scorers: dict[str, Scorer] = {}
    templates: set[str] = set()
    totals = {"docs": 0, "errors": 0, "prompts": 0, "unparseable": 0, "truncated": 0,
              "ungrounded": 0, "output_tokens": 0, "request_seconds": 0.0}
    for doc in docs:
        rec = by_id.get(doc.id)
        if rec is None:
            continue
        totals["docs"] += 1
        totals["request_seconds"] += rec.get("seconds", 0.0)
        pred = rec.get("pred") or {}
        if rec.get("template"):
            templates.add(rec["template"])
        if "error" in rec:
            totals["errors"] += 1
        for key in ("prompts", "unparseable", "truncated", "ungrounded", "output_tokens"):
            totals[key] += (rec.get("stats") or {}).get(key, 0)
        for kind, gold in TASKS[task].gold_tuples(doc).items():
            scorers.setdefault(kind, Scorer()).add(gold, [tuple(p) for p in pred.get(kind, [])])
    totals["parse_failure_rate"] = round(totals["unparseable"] / totals["prompts"], 4) if totals["prompts"] else 0.0
    totals["truncation_rate"] = round(totals["truncated"] / totals["prompts"], 4) if totals["prompts"] else 0.0
    totals["docs_this_run"] = new
    totals["wall_seconds_this_run"] = round(wall, 2)
    totals["docs_per_s_this_run"] = round(new / wall, 3) if new else None
    return {"task": task, "request": body, "templates": sorted(templates), "totals": totals,
            "scores": {kind: s.report() for kind, s in scorers.items()}}
