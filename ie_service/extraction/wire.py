"""Wire formats of ``/extract/<task>`` and its batch form: the options every task shares,
and per-task request/response models generated from the task (its schema type, records)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from ..admission import MAX_LABELS_PER_REQUEST
from ..engine.sampling import MAX_OUTPUT_TOKENS, MAX_TEMPERATURE, SamplingOptions
from .records import ExtractionStats
from .tasks import Task

MAX_TEXT_CHARS = 200_000
MAX_BATCH = 256
# issue 31: every string a client sends is bounded. Names (templates, adapters, models) are
# looked up, never generated; label names become keys of the answer's grammar and of every
# prompt; descriptions and examples are repeated in every prompt of the request
MAX_NAME_CHARS = 128
MAX_LABEL_CHARS = 200
MAX_DESCRIPTION_CHARS = 2000
MAX_EXAMPLES = 16
MAX_EXAMPLE_CHARS = 4000  # an example's input, and its output as JSON
MAX_SCHEMA_ENTRIES = MAX_LABELS_PER_REQUEST  # labels of one list or object, roles of one event

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is empty or only whitespace: nothing to extract from")
    return text


# issue 20: the per-text cap holds for every text of a batch too (checked while the body is
# read, before any chunking); a blank text alone is refused, in a batch it is skipped
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]
BatchText = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]


class ExtractionParameters(SamplingOptions):
    """Sampling for extraction: greedy and room for a JSON answer by default."""

    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE)  # vLLM's range (issue 12 #2)
    max_tokens: int = Field(384, ge=1, le=MAX_OUTPUT_TOKENS)


def _example_output(value: Any) -> Any:
    size = len(json.dumps(value, ensure_ascii=False))
    if size > MAX_EXAMPLE_CHARS:
        raise ValueError(f"an example's output is {size} characters as JSON; at most {MAX_EXAMPLE_CHARS}")
    return value


class Example(BaseModel):
    """A worked example shown in the prompt (few-shot): text and the expected answer."""

    model_config = ConfigDict(extra="forbid", strict=True)
    input: str = Field(max_length=MAX_EXAMPLE_CHARS)
    output: Annotated[Any, AfterValidator(_example_output)]


def _schema_strings(value: Any) -> Iterator[tuple[str, bool]]:
    """(string, is a description) of every string in a task's schema, as its wire type
    validated it: a label's description is the string a name maps to or a spec's
    ``description``; every other string is a name. ValueError for a list or object of
    more than :data:`MAX_SCHEMA_ENTRIES`."""
    if isinstance(value, str):
        yield value, False
    elif isinstance(value, BaseModel):
        for field, item in value:
            if field == "description":
                yield item, True
            elif item is not None:
                yield from _schema_strings(item)
    elif isinstance(value, dict):
        _check_entries(len(value))
        for name, item in value.items():
            yield name, False
            if isinstance(item, str):
                yield item, True
            else:
                yield from _schema_strings(item)
    elif isinstance(value, list):
        _check_entries(len(value))
        for item in value:
            yield from _schema_strings(item)


def _check_entries(n: int) -> None:
    if n > MAX_SCHEMA_ENTRIES:
        raise ValueError(f"a list or object in the schema has {n} entries; at most {MAX_SCHEMA_ENTRIES}")


def bounded_schema(value: Any) -> Any:
    """``value`` (a task's schema) unless a name or description in it is too long (ValueError)."""
    for text, description in _schema_strings(value):
        what, limit = ("description", MAX_DESCRIPTION_CHARS) if description else ("name", MAX_LABEL_CHARS)
        if len(text) > limit:
            raise ValueError(f"a {what} in the schema has {len(text)} characters ({text[:40]!r}...); "
                             f"at most {limit}")
    return value


class ExtractOptions(BaseModel):
    """What every extraction request may set besides its text(s) and schema."""

    # strict: no coercion on the wire (``true`` is not 1, ``"no"`` is not False)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    language: Literal["zh", "en", "auto"] = "auto"
    constrained: bool = Field(True, description="enforce a JSON schema of the labels while decoding")
    template: Name | None = Field(None, description="template name (or name@version) from prompts/tasks; "
                                                   "default by task+language")
    examples: list[Example] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    labels_per_prompt: int | None = Field(None, ge=1, le=64,
                                          description="split large schemas; default: the task's own size")
    grounded: bool = Field(True, description=(
        "constrained requests: every span is decoded as a run of the chunk's own text "
        "(false: any string)"))
    drop_ungrounded: bool = Field(False, description="drop spans that are not in the text")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description=(
        "drop records whose confidence is below this (0..1; an event also drops its arguments "
        "below it); default 0: keep all"))
    adapter: Name | None = Field(None, description="a LoRA adapter loaded with serve --lora NAME=PATH "
                                                  "(see /v1/models); default: the served model alone")
    parameters: ExtractionParameters = Field(default_factory=ExtractionParameters)


class ExtractResult(BaseModel):
    """What every extraction response holds besides its records."""

    language: str
    template: str = Field(description="the template used, name@version")
    raw_output: list[str] = Field(description="what the model said, one string per prompt")
    warnings: list[str]
    stats: ExtractionStats


@dataclass(frozen=True)
class TaskModels:
    request: type[ExtractOptions]
    batch_request: type[ExtractOptions]
    response: type[ExtractResult]
    batch_response: type[BaseModel]


@cache
def task_models(task: Task) -> TaskModels:
    """The wire models of one task (``NERRequest``, ``NERBatchRequest``, ...)."""
    def shared() -> dict[str, Any]:
        return {
            "schema_": (Annotated[task.wire_schema, AfterValidator(bounded_schema)],
                        Field(..., alias="schema", description=task.schema_help or None)),
            "labels_per_prompt": (int | None, Field(None, ge=1, le=64, description=(
                f"split large schemas; default {task.labels_per_prompt} labels per prompt"))),
        }

    response = create_model(f"{task.title}Response", __base__=ExtractResult,
                             **{task.records_field: (list[task.record], ...)})
    return TaskModels(
        request=create_model(f"{task.title}Request", __base__=ExtractOptions,
                             text=(Text, Field(...)),
                             **shared()),
        batch_request=create_model(f"{task.title}BatchRequest", __base__=ExtractOptions,
                                   texts=(list[BatchText], Field(..., min_length=1, max_length=MAX_BATCH, description=(
                                       "blank texts are skipped (empty result, a warning)"))),
                                   **shared()),
        response=response,
        batch_response=create_model(f"{task.title}BatchResponse", results=(list[response], ...)),
    )
