"""Wire formats of ``/extract/<task>`` and its batch form: the options every task shares,
and per-task request/response models generated from the task (its schema type, records)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from ..engine import MAX_TEMPERATURE, SamplingOptions
from .records import ExtractionStats
from .tasks import Task

MAX_TEXT_CHARS = 200_000
MAX_BATCH = 256


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
    max_tokens: int = Field(384, ge=1, le=32768)


class Example(BaseModel):
    """A worked example shown in the prompt (few-shot): text and the expected answer."""

    model_config = ConfigDict(extra="forbid", strict=True)
    input: str
    output: Any


class ExtractOptions(BaseModel):
    """What every extraction request may set besides its text(s) and schema."""

    # strict: no coercion on the wire (``true`` is not 1, ``"no"`` is not False)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    language: Literal["zh", "en", "auto"] = "auto"
    constrained: bool = Field(True, description="enforce a JSON schema of the labels while decoding")
    template: str | None = Field(None, description="template name (or name@version) from prompts/tasks; "
                                                   "default by task+language")
    examples: list[Example] = Field(default_factory=list, max_length=16)
    labels_per_prompt: int | None = Field(None, ge=1, le=64,
                                          description="split large schemas; default: the task's own size")
    grounded: bool = Field(True, description=(
        "constrained requests: every span is decoded as a run of the chunk's own text "
        "(false: any string)"))
    drop_ungrounded: bool = Field(False, description="drop spans that are not in the text")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description=(
        "drop records whose confidence is below this (0..1; an event also drops its arguments "
        "below it); default 0: keep all"))
    adapter: str | None = Field(None, description="a LoRA adapter loaded with serve --lora NAME=PATH "
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
            "schema_": (task.wire_schema, Field(..., alias="schema", description=task.schema_help or None)),
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
