"""Run extraction over a gold set through a service URL, score it, write a report.

Predictions are appended to a JSONL file as they arrive; a rerun with the same file skips
documents already done (resumable). A document whose request failed is never written, so a
rerun retries it; a cut last line (a killed run) is moved aside and its document redone."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from .. import jsonl
from ..client import AsyncIEClient, IEError, IEStatusError
from ..extraction.tasks import TASKS
from ..gold import GoldDoc
from ..errors import BadInputFile
from .scoring import Scorer
from .trust import TrustScorer, scored_tuples


class PredictionRecord(BaseModel):
    """One line of the predictions file: a document's prediction. Failures are never
    written (a rerun retries them); ``error`` lines of older versions are read as not done."""

    id: str
    pred: dict[str, list] | None = None
    conf: dict[str, list] | None = None  # each predicted tuple's confidence, aligned with pred
    stats: dict[str, Any] | None = None
    template: str | None = None
    seconds: float = 0.0
    error: str | None = None


def read_predictions(path: Path) -> tuple[dict[str, PredictionRecord], int]:
    """({id: its latest prediction}, cut last lines skipped) of a predictions file (missing:
    none yet). ``error`` records and a cut last line are not predictions: retried."""
    lines = jsonl.read_json_lines(path, what="a prediction object", missing_ok=True)
    by_id: dict[str, PredictionRecord] = {}
    for n, obj in lines.records:
        try:
            rec = PredictionRecord.model_validate(obj)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BadInputFile(path, f"not a prediction record: {'.'.join(map(str, err['loc']))}: "
                                     f"{err['msg']} (is --predictions another file?)", line=n) from None
        if rec.error is None and rec.pred is not None:
            by_id[rec.id] = rec
    return by_id, lines.cut


@dataclass
class Failure:
    doc_id: str
    status: int | None  # None: no HTTP answer
    message: str


async def _predict(url: str, task: str, docs: list[GoldDoc], body: dict[str, Any],
                   out: Path, concurrency: int, api_key: str | None,
                   transport: httpx.AsyncBaseTransport | None = None) -> tuple[int, list[Failure]]:
    """Predict the documents not yet in ``out``; (documents predicted, failures). A failed
    document is reported, never written."""
    done, _ = read_predictions(out)
    todo = [d for d in docs if d.id not in done]
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(docs), initial=len(docs) - len(todo), desc=f"eval {task}", unit="doc")
    failures: list[Failure] = []
    predicted = 0

    def failed(doc: GoldDoc, status: int | None, message: str) -> None:
        failures.append(Failure(doc.id, status, message))
        if len(failures) <= MAX_FAILURES_SHOWN:
            bar.write(f"{doc.id}: {message} (not saved; a rerun retries it)")

    with jsonl.open_for_append(out) as sink:
        async with AsyncIEClient(url, api_key=api_key, timeout=600, transport=transport) as client:
            async def one(doc: GoldDoc) -> None:
                nonlocal predicted
                async with sem:
                    t = time.perf_counter()
                    try:
                        res = (await client.extract(task, doc.text, **body)).model_dump()
                    except IEStatusError as exc:
                        failed(doc, exc.status, f"HTTP {exc.status}: {' '.join(exc.message[:300].split())}")
                        bar.update()
                        return
                    except IEError as exc:  # no HTTP answer, or an answer that is not the records
                        failed(doc, None, str(exc))
                        bar.update()
                        return
                    seconds = time.perf_counter() - t
                pred, conf = scored_tuples(task, res)
                record = {"id": doc.id, "pred": pred, "conf": conf,
                          "stats": res["stats"], "template": res.get("template"), "seconds": seconds}
                jsonl.append(sink, record)
                predicted += 1
                bar.update()

            await asyncio.gather(*(one(d) for d in todo))
    bar.close()
    return predicted, failures


MAX_FAILURES_SHOWN = 10


def evaluate(url: str, task: str, docs: list[GoldDoc], body: dict[str, Any], predictions: Path,
             concurrency: int = 8, api_key: str | None = None,
             transport: httpx.AsyncBaseTransport | None = None) -> dict:
    """Predict what is missing from ``predictions``, then score the documents predicted.
    ``totals.errors``: documents still without a prediction (failed; a rerun retries them),
    ``totals.failures``: why (HTTP status → count). ``transport``: an httpx transport to
    reach the service by (an in-process app in tests)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    _, cut = read_predictions(predictions)
    t = time.perf_counter()
    new, failures = asyncio.run(_predict(url, task, docs, body, predictions, concurrency, api_key, transport))
    wall = time.perf_counter() - t
    by_id, _ = read_predictions(predictions)
    scorers: dict[str, Scorer] = {}
    trust: dict[str, TrustScorer] = {}
    templates: set[str] = set()
    totals = {"docs": 0, "errors": 0, "prompts": 0, "unparseable": 0, "truncated": 0,
              "ungrounded": 0, "output_tokens": 0, "request_seconds": 0.0}
    for doc in docs:
        rec = by_id.get(doc.id)
        if rec is None:
            totals["errors"] += 1
            continue
        totals["docs"] += 1
        totals["request_seconds"] += rec.seconds
        pred = rec.pred or {}
        if rec.template:
            templates.add(rec.template)
        for key in ("prompts", "unparseable", "truncated", "ungrounded", "output_tokens"):
            totals[key] += (rec.stats or {}).get(key, 0)
        for kind, gold in TASKS[task].gold_tuples(doc).items():
            scorers.setdefault(kind, Scorer()).add(gold, [tuple(p) for p in pred.get(kind, [])])
            trust.setdefault(kind, TrustScorer()).add(gold, pred.get(kind, []), (rec.conf or {}).get(kind),
                                                      triples=kind == "triples")
    totals["parse_failure_rate"] = round(totals["unparseable"] / totals["prompts"], 4) if totals["prompts"] else 0.0
    totals["truncation_rate"] = round(totals["truncated"] / totals["prompts"], 4) if totals["prompts"] else 0.0
    totals["docs_this_run"] = new
    totals["failed_this_run"] = len(failures)
    totals["failures"] = dict(Counter("no answer" if f.status is None else f"HTTP {f.status}" for f in failures))
    totals["cut_lines"] = cut
    totals["wall_seconds_this_run"] = round(wall, 2)
    totals["docs_per_s_this_run"] = round(new / wall, 3) if new else None
    return {"task": task, "request": body, "templates": sorted(templates), "totals": totals,
            "scores": {kind: s.report() for kind, s in scorers.items()},
            "trust": {kind: s.report(triples=kind == "triples") for kind, s in trust.items()}}


def predicted_by_doc(predictions: Path, kind: str) -> dict[str, list[tuple]]:
    """Document id → its predicted tuples of one score kind, from a predictions file."""
    by_id, _ = read_predictions(predictions)
    return {i: [tuple(p) for p in (rec.pred or {}).get(kind, [])] for i, rec in by_id.items()}
