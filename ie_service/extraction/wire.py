"""Wire formats of ``/extract/{ner,re,ee}`` and their batch forms."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..sampling import SamplingOptions
from .records import Entity, Event, ExtractionStats, Triple

MAX_TEXT_CHARS = 200_000
MAX_BATCH = 256


class ExtractionParameters(SamplingOptions):
    """Sampling for extraction: greedy and room for a JSON answer by default."""

    temperature: float = Field(0.0, ge=0.0, le=10.0)
    max_tokens: int = Field(384, ge=1, le=32768)


class Example(BaseModel):
    """A worked example shown in the prompt (few-shot): text and the expected answer."""

    model_config = ConfigDict(extra="forbid")
    input: str
    output: Any


class RelationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relation: str
    description: str = ""
    head_type: str | None = None
    tail_type: str | None = None


class EventSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_type: str
    arguments: list[str] = Field(default_factory=list)
    description: str = ""


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    language: Literal["zh", "en", "auto"] = "auto"
    constrained: bool = Field(True, description="enforce a JSON schema of the labels while decoding")
    template: str | None = Field(None, description="template name from prompts/tasks; default by task+language")
    examples: list[Example] = Field(default_factory=list, max_length=16)
    labels_per_prompt: int | None = Field(None, ge=1, le=64,
                                          description="split large schemas; default 6 NER, 4 RE/EE")
    drop_ungrounded: bool = Field(False, description="drop spans that are not in the text")
    parameters: ExtractionParameters = Field(default_factory=ExtractionParameters)


_Text = Field(..., min_length=1, max_length=MAX_TEXT_CHARS)
_Texts = Field(..., min_length=1, max_length=MAX_BATCH)

NERSchema = list[str] | dict[str, str]
RESchema = list[str | RelationSpec] | dict[str, str]
EESchema = dict[str, list[str]] | list[EventSpec]


class NERRequest(_Options):
    text: str = _Text
    schema_: NERSchema = Field(..., alias="schema", description='["person", ...] or {"person": "description"}')


class RERequest(_Options):
    text: str = _Text
    schema_: RESchema = Field(..., alias="schema")


class EERequest(_Options):
    text: str = _Text
    schema_: EESchema = Field(..., alias="schema", description='{"event type": ["role", ...]}')


class NERBatchRequest(_Options):
    texts: list[str] = _Texts
    schema_: NERSchema = Field(..., alias="schema")


class REBatchRequest(_Options):
    texts: list[str] = _Texts
    schema_: RESchema = Field(..., alias="schema")


class EEBatchRequest(_Options):
    texts: list[str] = _Texts
    schema_: EESchema = Field(..., alias="schema")


class _Result(BaseModel):
    language: str
    raw_output: list[str] = Field(description="what the model said, one string per prompt")
    warnings: list[str]
    stats: ExtractionStats


class NERResponse(_Result):
    entities: list[Entity]


class REResponse(_Result):
    triples: list[Triple]


class EEResponse(_Result):
    events: list[Event]


class NERBatchResponse(BaseModel):
    results: list[NERResponse]


class REBatchResponse(BaseModel):
    results: list[REResponse]


class EEBatchResponse(BaseModel):
    results: list[EEResponse]
