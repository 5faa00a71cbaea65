"""Model output → label-checked raw records (strings, not yet located in the text).

Pure functions; they accept every answer shape the prompts in ``prompts/tasks`` ask for
(OneKE JSON keyed by label, JSON lists of objects, KnowLM tuples in any bracket, Chinese
``关系：头,尾`` lines) and never raise on any string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .lenient_json import find_json

EMPTY_VALUES = {"", "nan", "none", "null", "n/a", "无", "空"}
_TUPLE = re.compile(r"[(（\[<{【]([^()（）\[\]<>{}【】\n]+)[)）\]>}】]")
_SEP = re.compile(r"\s*[,，、]\s*")
_LABEL_LINE = re.compile(r"^\s*[-*•]?\s*([^:：\n]{1,80})\s*[:：]\s*(.+?)\s*$")


@dataclass
class Parsed:
    """What one model output said. ``ok`` is False when nothing could be read at all."""

    records: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ok: bool = True


def _norm(label: str) -> str:
    return re.sub(r"[\s_\-]+", " ", label.strip().lower())


class LabelSet:
    """Maps the model's spelling of a label to the schema's (case, '-', '_' insensitive)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        self._by_norm = {_norm(n): n for n in self.names}

    def match(self, label: Any) -> str | None:
        return self._by_norm.get(_norm(label)) if isinstance(label, str) else None


def _value_text(value: Any) -> str | None:
    """A span string from a scalar answer, or None for empty / NAN / non-text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip().strip("\"'")
    return None if value.lower() in EMPTY_VALUES else value


def _span_values(value: Any) -> list[str]:
    """Strings from a value that may be a string, a list of strings, or dicts with a text."""
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(_span_values(v))
        return out
    if isinstance(value, dict):
        for key in ("text", "name", "entity", "span", "argument", "value", "mention"):
            if key in value:
                return _span_values(value[key])
        return []
    text = _value_text(value)
    return [text] if text else []


def _first(obj: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _unknown(label: Any) -> str:
    return f"dropped label not in schema: {str(label)[:60]!r}"


def _known(out: Parsed, labels: LabelSet, raw: Any, has_values: Any = True) -> str | None:
    """The schema's label for ``raw``; an unknown label that carried values is warned about."""
    label = labels.match(raw)
    if label is None and has_values:
        out.warnings.append(_unknown(raw))
    return label


# --- NER ---------------------------------------------------------------------------

def parse_ner(text: str, labels: LabelSet) -> Parsed:
    """→ records ``(entity_text, label)``."""
    out = Parsed()
    data = find_json(text)
    if isinstance(data, dict):
        for key, value in data.items():
            values = _span_values(value)
            label = _known(out, labels, key, values)
            if label is not None:
                out.records += [(v, label) for v in values]
        return out
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                raw_label = _first(item, ("type", "label", "entity_type", "category"))
                names = _span_values(_first(item, ("entity", "name", "text", "span", "mention")))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                names, raw_label = _span_values(item[0]), item[1]
            else:
                continue
            label = _known(out, labels, raw_label, names)
            if label is not None:
                out.records += [(n, label) for n in names]
        return out
    return _parse_ner_free(text, labels, out)


def _parse_ner_free(text: str, labels: LabelSet, out: Parsed) -> Parsed:
    found = False
    for inner in _TUPLE.findall(text):
        parts = [p for p in _SEP.split(inner.strip()) if p]
        if len(parts) != 2:
            continue
        found = True
        a, b = parts
        if label := labels.match(b):
            out.records.append((_value_text(a), label))
        elif label := labels.match(a):
            out.records.append((_value_text(b), label))
        else:
            out.warnings.append(_unknown(b))
    if not found:  # "person: Obama, Merkel" or "Obama: person", one per line
        for line in text.splitlines():
            m = _LABEL_LINE.match(line)
            if not m:
                continue
            left, right = m.group(1), m.group(2)
            if labels.match(left):
                found = True
                out.records += [(v, labels.match(left)) for v in _SEP.split(right) if _value_text(v)]
            elif labels.match(right):
                found = True
                out.records.append((_value_text(left), labels.match(right)))
    out.records = [(t, lab) for t, lab in out.records if t]
    out.ok = found or not text.strip()
    return out


# --- RE ------------------------------------------------------------------------------

_HEAD = ("subject", "head", "head_entity", "头实体", "主体")
_TAIL = ("object", "tail", "tail_entity", "尾实体", "客体")
_REL = ("relation", "predicate", "relation_type", "关系")


def _pairs(value: Any) -> list[tuple[str, str]]:
    """``[{"subject","object"}]``, ``{"subject","object"}`` or ``[[h, t]]`` → pairs."""
    items = value if isinstance(value, list) else [value]
    out = []
    if len(items) == 2 and all(isinstance(v, str) for v in items):
        items = [items]
    for item in items:
        if isinstance(item, dict):
            h, t = _value_text(_first(item, _HEAD)), _value_text(_first(item, _TAIL))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            h, t = _value_text(item[0]), _value_text(item[1])
        else:
            continue
        if h and t:
            out.append((h, t))
    return out


def parse_re(text: str, relations: LabelSet) -> Parsed:
    """→ records ``(head, relation, tail)``."""
    out = Parsed()
    data = find_json(text)
    if isinstance(data, dict) and not any(k in data for k in _REL):
        for key, value in data.items():
            pairs = _pairs(value)
            rel = _known(out, relations, key, pairs)
            if rel is not None:
                out.records += [(h, rel, t) for h, t in pairs]
        return out
    if isinstance(data, (dict, list)):
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                h, r, t = _first(item, _HEAD), _first(item, _REL), _first(item, _TAIL)
            elif isinstance(item, (list, tuple)) and len(item) == 3:
                h, r, t = item
            else:
                continue
            _add_triple(out, _value_text(h), r, _value_text(t), relations)
        return out
    return _parse_re_free(text, relations, out)


def _add_triple(out: Parsed, h: str | None, r: Any, t: str | None, relations: LabelSet) -> None:
    if not (h and t):
        return
    rel = _known(out, relations, r)
    if rel is not None:
        out.records.append((h, rel, t))


def _parse_re_free(text: str, relations: LabelSet, out: Parsed) -> Parsed:
    found = False
    for inner in _TUPLE.findall(text):
        parts = [p for p in _SEP.split(inner.strip()) if p]
        if len(parts) < 3:
            continue
        found = True
        # the relation is the middle part; entity names may themselves hold commas
        idx = next((i for i in range(1, len(parts) - 1) if relations.match(parts[i])), None)
        if idx is None:
            _add_triple(out, parts[0], parts[1], ",".join(parts[2:]), relations)
        else:
            _add_triple(out, ", ".join(parts[:idx]), parts[idx], ", ".join(parts[idx + 1:]), relations)
    if not found:  # 关系：头实体,尾实体 — one per line
        for line in text.splitlines():
            m = _LABEL_LINE.match(line)
            if not m or not relations.match(m.group(1)):
                continue
            parts = [p for p in _SEP.split(m.group(2)) if p]
            if len(parts) >= 2:
                found = True
                _add_triple(out, _value_text(parts[0]), m.group(1), _value_text(",".join(parts[1:])), relations)
    out.ok = found or not text.strip()
    return out


# --- EE ------------------------------------------------------------------------------

EventRecord = tuple[str, str | None, list[tuple[str, str]]]


def _arguments(value: Any) -> list[tuple[str, Any]]:
    """``{role: value}`` or ``[{"role": r, "argument": v}]`` → (role, value) pairs."""
    if isinstance(value, dict):
        return list(value.items())
    out = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                role = _first(item, ("role", "argument_role", "角色", "论元角色"))
                out.append((role, _first(item, ("argument", "text", "value", "name", "论元"))))
    return out


def _event(out: Parsed, etype: str, roles: LabelSet, item: Any) -> None:
    if not isinstance(item, dict):
        return
    trigger = _value_text(_first(item, ("trigger", "触发词", "event_trigger")))
    args: list[tuple[str, str]] = []
    for raw_role, value in _arguments(_first(item, ("arguments", "args", "论元"))):
        values = _span_values(value)
        role = _known(out, roles, raw_role, values)
        if role is not None:
            args += [(role, v) for v in values]
    if trigger or args:
        out.records.append((etype, trigger, args))


def parse_ee(text: str, events: dict[str, list[str]]) -> Parsed:
    """``events``: event type → roles. → records ``(type, trigger, [(role, text)])``."""
    out = Parsed()
    types = LabelSet(events)
    role_sets = {name: LabelSet(roles) for name, roles in events.items()}
    data = find_json(text)
    if isinstance(data, dict) and not any(k in data for k in ("event_type", "type")):
        for key, value in data.items():
            etype = _known(out, types, key, value)
            if etype is not None:
                for item in value if isinstance(value, list) else [value]:
                    _event(out, etype, role_sets[etype], item)
        return out
    if isinstance(data, (dict, list)):
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict):
                continue
            raw = _first(item, ("event_type", "type", "事件类型"))
            etype = _known(out, types, raw)
            if etype is not None:
                _event(out, etype, role_sets[etype], item)
        return out
    out.ok = not text.strip()
    return out
