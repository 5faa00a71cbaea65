"""``GET /templates``: the prompt templates this service loaded (for clients and the
playground's template picker)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ..state import extractor_of

router = APIRouter()


class TemplateInfo(BaseModel):
    name: str
    version: int
    ref: str  # name@version, what responses report
    task: str
    language: str
    style: str  # "schema" (JSON, needed when constrained) or "knowlm" (free text)


class TemplateList(BaseModel):
    templates: list[TemplateInfo]


@router.get("/templates", response_model=TemplateList)
async def templates(request: Request) -> TemplateList:
    loaded = extractor_of(request).templates.templates
    return TemplateList(templates=[
        TemplateInfo(name=t.name, version=t.version, ref=t.ref, task=t.task, language=t.language, style=t.style)
        for t in sorted(loaded.values(), key=lambda t: (t.task, t.language, t.name))])
