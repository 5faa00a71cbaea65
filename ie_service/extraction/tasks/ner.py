"""NER: entities of the requested types, as ``{"person": ["Obama", ...], ...}``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from ...gold import GoldDoc
from ..constraints import FULL, MAX_ITEMS, SPAN, answer_list, answer_object, compacted
from ..grounded_grammar import SPAN_RULE, answer_object_rules, bounded_list
from ..lenient_json import find_json
from ..parsing import LABEL_LINE, SEP, TUPLE, LabelSet, Parsed, first, known, span_values, unknown, value_text
from ..records import Entity
from ..schema import SchemaError, check_nonempty, check_unique, clean_name
from .base import Grounder, Task, bounded, gold_span, named, span_key
from ..confidence import span_confidence  # after .base: it imports base


class EntityType(BaseModel):
    name: str
    description: str = ""


NERSchema = list[str] | dict[str, str]


def entity_types(schema: Any) -> list[EntityType]:
    """``["person", ...]`` or ``{"person": "a human being", ...}``."""
    check_nonempty(schema, "entity type")
    if isinstance(schema, dict):
        out = [EntityType(name=clean_name(k, "entity type"), description=str(v or "")) for k, v in schema.items()]
    elif isinstance(schema, list):
        out = [EntityType(name=clean_name(k, "entity type")) for k in schema]
    else:
        raise SchemaError("NER schema must be a list of entity types or a {type: description} object")
    check_unique([e.name for e in out], "entity type")
    return out


@lru_cache(maxsize=512)
def ner_schema(labels: tuple[str, ...], shape: str = FULL) -> dict[str, Any]:
    """``{"person": ["Obama", ...], "location": [...]}`` (compact: ``location`` left out)"""
    return answer_object({label: answer_list(SPAN, shape) for label in labels}, shape)


@lru_cache(maxsize=512)
def ner_grammar(labels: tuple[str, ...], shape: str = FULL) -> str:
    """``ner_schema``'s shape with grounded spans."""
    spans = bounded_list(SPAN_RULE, MAX_ITEMS, min_items=1 if shape != FULL else 0)
    return "\n".join(answer_object_rules("root", [(label, spans) for label in labels], shape))


def parse_ner(text: str, labels: LabelSet) -> Parsed:
    """→ records ``(entity_text, label)``."""
    out = Parsed()
    data = find_json(text)
    if isinstance(data, dict):
        for key, value in data.items():
            values = span_values(value)
            label = known(out, labels, key, values)
            if label is not None:
                out.records += [(v, label) for v in values]
        return out
    if isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                raw_label = first(item, ("type", "label", "entity_type", "category"))
                names = span_values(first(item, ("entity", "name", "text", "span", "mention")))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                names, raw_label = span_values(item[0]), item[1]
            else:
                continue
            label = known(out, labels, raw_label, names)
            if label is not None:
                out.records += [(n, label) for n in names]
        return out
    return _parse_free(text, labels, out)


def _parse_free(text: str, labels: LabelSet, out: Parsed) -> Parsed:
    found = False
    for inner in TUPLE.findall(text):
        parts = [p for p in SEP.split(inner.strip()) if p]
        if len(parts) != 2:
            continue
        found = True
        a, b = parts
        if label := labels.match(b):
            out.records.append((value_text(a), label))
        elif label := labels.match(a):
            out.records.append((value_text(b), label))
        else:
            out.warnings.append(unknown(b))
    if not found:  # "person: Obama, Merkel" or "Obama: person", one per line
        for line in text.splitlines():
            m = LABEL_LINE.match(line)
            if not m:
                continue
            left, right = m.group(1), m.group(2)
            if labels.match(left):
                found = True
                out.records += [(v, labels.match(left)) for v in SEP.split(right) if value_text(v)]
            elif labels.match(right):
                found = True
                out.records.append((value_text(left), labels.match(right)))
    out.records = [(t, lab) for t, lab in out.records if t]
    out.ok = found or not text.strip()
    return out


class NER(Task[EntityType]):
    name = "ner"
    labels_per_prompt = 6
    records_field = "entities"
    record = Entity
    wire_schema = NERSchema
    schema_help = '["person", ...] or {"person": "description"}'
    summary = "Named entities of the schema's types, with character offsets."

    def labels(self, raw: Any) -> list[EntityType]:
        return entity_types(raw)

    def prompt_schema(self, group: list[EntityType]) -> Any:
        return named(group)

    def json_schema(self, group: list[EntityType], shape: str = FULL) -> dict[str, Any]:
        return ner_schema(tuple(label.name for label in group), shape)

    def answer_grammar(self, group: list[EntityType], shape: str = FULL) -> str:
        return ner_grammar(tuple(label.name for label in group), shape)

    def parse(self, text: str, group: list[EntityType]) -> Parsed:
        return parse_ner(text, LabelSet(label.name for label in group))

    def build(self, records: list[Any], group: list[EntityType], ground: Grounder) -> list[Entity]:
        return [ground.span(text, Entity, type=label, confidence=span_confidence(ground, text))
                for text, label in records]

    def key(self, record: Entity) -> tuple:
        return (record.type, *span_key(record))

    def grounded_only(self, record: Entity) -> Entity | None:
        return record if record.grounded else None

    def gold_schema(self, docs: list[GoldDoc]) -> list[str]:
        return sorted({t for d in docs for _, t in d.entities})

    def gold_label_names(self, doc: GoldDoc) -> list[str]:
        return sorted({t for _, t in doc.entities})

    def gold_tuples(self, doc: GoldDoc) -> dict[str, list[tuple]]:
        return {"entities": [(t, x) for x, t in doc.entities]}

    def predicted_tuples(self, response: dict[str, Any]) -> dict[str, list[tuple]]:
        return {"entities": [(e["type"], e["text"]) for e in response["entities"]]}

    def gold_answer(self, doc: GoldDoc, group: list[EntityType], shape: str = FULL) -> dict[str, Any]:
        out = {label.name: bounded([gold_span(doc.text, x) for x, t in doc.entities if t == label.name])
               for label in group}
        return out if shape == FULL else compacted(out)
