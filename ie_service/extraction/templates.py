"""IE prompt templates: files in ``ie_service/prompts/tasks/*.json`` (and any user folder).

A template file holds ``name``, ``task`` (a registered task: ner|re|ee|...), ``language``
(en|zh), ``style``, ``instruction`` and optionally ``version`` (default 1; bump it when the
wording changes, so results name the prompt that produced them: ``name@version``). Styles:
- ``schema``: OneKE / IEPile — the prompt is ``json.dumps({"instruction", "schema",
  ["example"], "input"})``; the answer is JSON keyed by label. Required under constraints.
- ``knowlm``: KnowLM — the instruction names the labels (``{labels}``), the text goes in the
  Alpaca input; the answer is free text (tuples), parsed leniently. Literal braces are
  written ``{{`` and ``}}``.
Files are checked when they load: unknown keys, tasks or placeholders are refused then,
never at request time.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidRequest
from ..paths import prompts_dir
from .tasks import TASKS

Style = Literal["schema", "knowlm"]
PLACEHOLDERS = {"labels"}


class TemplateError(InvalidRequest):
    """Unknown template, or one that does not fit the request (answered with a 4xx)."""


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a str.format text; ValueError on a stray brace or a field
    with a conversion or format spec."""
    fields = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} may not have a conversion or format spec")
        fields.add(name)
    return fields


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[^@\s]+$")
    version: int = Field(1, ge=1)
    task: str
    language: Literal["en", "zh"]
    style: Style
    instruction: str

    @field_validator("task")
    @classmethod
    def _registered(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
        return task

    @model_validator(mode="after")
    def _fields(self) -> "Template":
        if self.style == "knowlm":
            try:
                found = placeholders(self.instruction)
            except ValueError as exc:
                raise ValueError(f"instruction: {exc} (write literal braces as '{{{{' and '}}}}')") from exc
            if found - PLACEHOLDERS:
                raise ValueError(f"instruction: unknown placeholder(s) {sorted(found - PLACEHOLDERS)}; "
                                 f"allowed: {sorted(PLACEHOLDERS)} (write literal braces as '{{{{' and '}}}}')")
        return self

    @property
    def ref(self) -> str:
        """``name@version``: what results record as the prompt that produced them."""
        return f"{self.name}@{self.version}"

    def render(self, text: str, schema: Any, labels_text: str,
               examples: list[dict] | None = None) -> tuple[str, str]:
        """→ (instruction, input) for the model family's prompt format."""
        if self.style == "schema":
            payload: dict[str, Any] = {"instruction": self.instruction, "schema": schema}
            if examples:
                payload["example"] = examples
            payload["input"] = text
            return json.dumps(payload, ensure_ascii=False), ""
        instruction = self.instruction.format(labels=labels_text)
        if examples:
            shots = "\n".join(f"Input: {e['input']}\nOutput: {json.dumps(e['output'], ensure_ascii=False)}"
                              for e in examples)
            instruction = f"{instruction}\n\n{shots}"
        return instruction, text


class TemplateRegistry:
    """All templates by name; later folders override earlier ones of the same name."""

    def __init__(self, folders: list[Path]) -> None:
        self.templates: dict[str, Template] = {}
        for folder in folders:
            for path in sorted(Path(folder).glob("*.json")):
                try:
                    t = Template.model_validate_json(path.read_text(encoding="utf-8"))
                except ValidationError as exc:
                    raise TemplateError(f"bad template file {path}: {exc}") from exc
                self.templates[t.name] = t

    @classmethod
    def default(cls, extra: list[Path] = ()) -> "TemplateRegistry":
        """``ie_service/prompts/tasks``, then the folders tasks ship, then ``extra``."""
        shipped = [t.templates_dir for t in TASKS.values() if t.templates_dir is not None]
        return cls([prompts_dir() / "tasks", *shipped, *extra])

    def pick(self, task: str, language: str, name: str | None, constrained: bool) -> Template:
        """``name`` may pin a version (``ner-en-schema@1``): another version is refused."""
        if name is not None:
            base, _, version = name.partition("@")
            t = self.templates.get(base)
            if t is None:
                raise TemplateError(f"unknown template {base!r}; known: {sorted(self.templates)}")
            if version and version != str(t.version):
                raise TemplateError(f"template {base!r} is at version {t.version}, not {version}")
            if t.task != task:
                raise TemplateError(f"template {base!r} is for task {t.task!r}, not {task!r}")
        else:
            t = self.templates.get(f"{task}-{language}-schema")
            if t is None:
                raise TemplateError(f"no default template for task {task!r} in language {language!r}")
        if constrained and t.style != "schema":
            raise TemplateError(
                f"template {t.name!r} asks for free text; constrained decoding needs a "
                "'schema'-style template (or set constrained=false)")
        return t
