"""IE prompt templates: files in ``prompts/tasks/*.json`` (and any user folder).

A template file holds ``name``, ``task`` (ner|re|ee), ``language`` (en|zh), ``style`` and
``instruction``. Styles:
- ``schema``: OneKE / IEPile — the prompt is ``json.dumps({"instruction", "schema",
  ["example"], "input"})``; the answer is JSON keyed by label. Required under constraints.
- ``knowlm``: KnowLM — the instruction names the labels (``{labels}``), the text goes in the
  Alpaca input; the answer is free text (tuples), parsed leniently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from ..paths import prompts_dir

Style = Literal["schema", "knowlm"]


class TemplateError(ValueError):
    """Unknown template, or one that does not fit the request (answered with a 4xx)."""


class Template(BaseModel):
    name: str
    task: Literal["ner", "re", "ee"]
    language: Literal["en", "zh"]
    style: Style
    instruction: str

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
        return cls([prompts_dir() / "tasks", *extra])

    def pick(self, task: str, language: str, name: str | None, constrained: bool) -> Template:
        if name is not None:
            t = self.templates.get(name)
            if t is None:
                raise TemplateError(f"unknown template {name!r}; known: {sorted(self.templates)}")
            if t.task != task:
                raise TemplateError(f"template {name!r} is for task {t.task!r}, not {task!r}")
        else:
            t = self.templates.get(f"{task}-{language}-schema")
            if t is None:
                raise TemplateError(f"no default template for task {task!r} in language {language!r}")
        if constrained and t.style != "schema":
            raise TemplateError(
                f"template {t.name!r} asks for free text; constrained decoding needs a "
                "'schema'-style template (or set constrained=false)")
        return t
