"""Shared pieces of the output parsers (each task's parser lives in ``tasks/``).

Parsers are pure functions: model output → label-checked raw records (strings, not yet
located in the text). They accept every answer shape the prompts in ``ie_service/prompts/tasks`` ask
for (OneKE JSON keyed by label, JSON lists of objects, KnowLM tuples in any bracket, Chinese
``关系：头,尾`` lines) and never raise on any string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .schema import label_key

EMPTY_VALUES = {"", "nan", "none", "null", "n/a", "无", "空"}
TUPLE = re.compile(r"[(（\[<{【]([^()（）\[\]<>{}【】\n]+)[)）\]>}】]")
SEP = re.compile(r"\s*[,，、]\s*")
LABEL_LINE = re.compile(r"^\s*[-*•]?\s*([^:：\n]{1,80})\s*[:：]\s*(.+?)\s*$")


@dataclass
class Parsed:
    """What one model output said. ``ok`` is False when nothing could be read at all."""

    records: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ok: bool = True


def _norm(label: str) -> str:
    return label_key(label)  # the same key the schema's duplicate check uses


class LabelSet:
    """Maps the model's spelling of a label to the schema's (case, '-', '_' insensitive)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        self._by_norm = {_norm(n): n for n in self.names}

    def match(self, label: Any) -> str | None:
        return self._by_norm.get(_norm(label)) if isinstance(label, str) else None


def value_text(value: Any) -> str | None:
    """A span string from a scalar answer, or None for empty / NAN / non-text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":  # a quoted span, not a quote in it
        value = value[1:-1].strip()
    return None if value.lower() in EMPTY_VALUES else value


def span_values(value: Any) -> list[str]:
    """Strings from a value that may be a string, a list of strings, or dicts with a text."""
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(span_values(v))
        return out
    if isinstance(value, dict):
        for key in ("text", "name", "entity", "span", "argument", "value", "mention"):
            if key in value:
                return span_values(value[key])
        return []
    text = value_text(value)
    return [text] if text else []


def first(obj: dict, keys: tuple[str, ...]) -> Any:
    """The value of the first of ``keys`` that ``obj`` has, else None."""
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def unknown(label: Any) -> str:
    return f"dropped label not in schema: {str(label)[:60]!r}"


def known(out: Parsed, labels: LabelSet, raw: Any, has_values: Any = True) -> str | None:
    """The schema's label for ``raw``; an unknown label that carried values is warned about."""
    label = labels.match(raw)
    if label is None and has_values:
        out.warnings.append(unknown(raw))
    return label
