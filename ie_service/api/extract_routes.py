"""``POST /extract/{ner,re,ee}`` and ``/extract/{task}/batch``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from ..extraction import wire
from ..extraction.extractor import Extractor, Outcome
from ..extraction.schema import SchemaError
from ..extraction.templates import TemplateError
from .disconnect import cancel_on_disconnect

router = APIRouter(prefix="/extract", tags=["extraction"])
_RECORDS = {"ner": "entities", "re": "triples", "ee": "events"}


def _response(task: str, outcome: Outcome) -> dict[str, Any]:
    return {
        "language": outcome.language,
        _RECORDS[task]: outcome.records,
        "raw_output": outcome.raw_output,
        "warnings": outcome.warnings,
        "stats": outcome.stats,
    }


async def _run(request: Request, task: str, texts: list[str], body: wire._Options) -> list[dict]:
    extractor: Extractor = request.app.state.extractor
    raw_schema = body.model_dump(by_alias=True)["schema"]
    try:
        outcomes = await cancel_on_disconnect(request, asyncio.gather(
            *(extractor.extract(task, text, raw_schema, body) for text in texts)))
    except (SchemaError, TemplateError) as exc:
        raise HTTPException(422, str(exc)) from exc
    metrics = request.app.state.metrics
    for o in outcomes:
        for kind in ("truncated", "unparseable", "ungrounded"):
            metrics.extraction.labels(task, kind).inc(getattr(o.stats, kind))
        metrics.output_tokens.labels(task).inc(o.stats.output_tokens)
    return [_response(task, o) for o in outcomes]


@router.post("/ner", response_model=wire.NERResponse)
async def extract_ner(body: wire.NERRequest, request: Request):
    """Named entities of the schema's types, with character offsets."""
    return (await _run(request, "ner", [body.text], body))[0]


@router.post("/re", response_model=wire.REResponse)
async def extract_re(body: wire.RERequest, request: Request):
    """Relation triples (head, relation, tail) of the schema's relations."""
    return (await _run(request, "re", [body.text], body))[0]


@router.post("/ee", response_model=wire.EEResponse)
async def extract_ee(body: wire.EERequest, request: Request):
    """Events of the schema's types, with trigger and role-labelled arguments."""
    return (await _run(request, "ee", [body.text], body))[0]


@router.post("/ner/batch", response_model=wire.NERBatchResponse)
async def extract_ner_batch(body: wire.NERBatchRequest, request: Request):
    return {"results": await _run(request, "ner", body.texts, body)}


@router.post("/re/batch", response_model=wire.REBatchResponse)
async def extract_re_batch(body: wire.REBatchRequest, request: Request):
    return {"results": await _run(request, "re", body.texts, body)}


@router.post("/ee/batch", response_model=wire.EEBatchResponse)
async def extract_ee_batch(body: wire.EEBatchRequest, request: Request):
    return {"results": await _run(request, "ee", body.texts, body)}
