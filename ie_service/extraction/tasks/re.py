"""RE: relation triples, as ``{"founded by": [{"subject": "...", "object": "..."}]}``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from ...gold import GoldDoc
from ..constraints import MAX_ITEMS, SPAN, list_of, strict_object
from ..grounded_grammar import SPAN_RULE, bounded_list, strict_object_rule
from ..lenient_json import find_json
from ..parsing import LABEL_LINE, SEP, TUPLE, LabelSet, Parsed, first, known, value_text
from ..records import Entity
from ..schema import SchemaError, check_nonempty, check_unique, clean_name
from .base import Grounder, Task, bounded, gold_span, named, span_key


class RelationType(BaseModel):
    name: str
    description: str = ""
    head_type: str | None = None
    tail_type: str | None = None


class RelationSpec(BaseModel):
    """A relation in a request's schema, with the types of its ends."""

    model_config = ConfigDict(extra="forbid")
    relation: str
    description: str = ""
    head_type: str | None = None
    tail_type: str | None = None


RESchema = list[str | RelationSpec] | dict[str, str]


class Triple(BaseModel):
    head: Entity
    relation: str
    tail: Entity


def relation_types(schema: Any) -> list[RelationType]:
    """``["founded by"]``, ``{"founded by": "description"}``, or
    ``[{"relation": "founded by", "head_type": "organization", "tail_type": "person"}]``."""
    check_nonempty(schema, "relation type")
    out: list[RelationType] = []
    if isinstance(schema, dict):
        out = [RelationType(name=clean_name(k, "relation"), description=str(v or "")) for k, v in schema.items()]
    elif isinstance(schema, list):
        for item in schema:
            if isinstance(item, dict):
                name = item.get("relation", item.get("name"))
                out.append(RelationType(
                    name=clean_name(name, "relation"),
                    description=str(item.get("description") or ""),
                    head_type=item.get("head_type") or None,
                    tail_type=item.get("tail_type") or None,
                ))
            else:
                out.append(RelationType(name=clean_name(item, "relation")))
    else:
        raise SchemaError("RE schema must be a list of relations or a {relation: description} object")
    check_unique([r.name for r in out], "relation")
    return out


@lru_cache(maxsize=512)
def re_schema(relations: tuple[str, ...]) -> dict[str, Any]:
    """``{"founded by": [{"subject": "...", "object": "..."}]}``"""
    pair = strict_object({"subject": SPAN, "object": SPAN})
    return strict_object({rel: list_of(pair) for rel in relations})


@lru_cache(maxsize=512)
def re_grammar(relations: tuple[str, ...]) -> str:
    """``re_schema``'s shape with grounded subject and object."""
    pairs = bounded_list("pair", MAX_ITEMS)
    return "\n".join([
        "root ::= " + strict_object_rule([(rel, pairs) for rel in relations]),
        "pair ::= " + strict_object_rule([("subject", SPAN_RULE), ("object", SPAN_RULE)]),
    ])


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
            h, t = value_text(first(item, _HEAD)), value_text(first(item, _TAIL))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            h, t = value_text(item[0]), value_text(item[1])
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
            rel = known(out, relations, key, pairs)
            if rel is not None:
                out.records += [(h, rel, t) for h, t in pairs]
        return out
    if isinstance(data, (dict, list)):
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                h, r, t = first(item, _HEAD), first(item, _REL), first(item, _TAIL)
            elif isinstance(item, (list, tuple)) and len(item) == 3:
                h, r, t = item
            else:
                continue
            _add_triple(out, value_text(h), r, value_text(t), relations)
        return out
    return _parse_free(text, relations, out)


def _add_triple(out: Parsed, h: str | None, r: Any, t: str | None, relations: LabelSet) -> None:
    if not (h and t):
        return
    rel = known(out, relations, r)
    if rel is not None:
        out.records.append((h, rel, t))


def _parse_free(text: str, relations: LabelSet, out: Parsed) -> Parsed:
    found = False
    for inner in TUPLE.findall(text):
        parts = [p for p in SEP.split(inner.strip()) if p]
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
            m = LABEL_LINE.match(line)
            if not m or not relations.match(m.group(1)):
                continue
            parts = [p for p in SEP.split(m.group(2)) if p]
            if len(parts) >= 2:
                found = True
                _add_triple(out, value_text(parts[0]), m.group(1), value_text(",".join(parts[1:])), relations)
    out.ok = found or not text.strip()
    return out


class RE(Task[RelationType]):
    name = "re"
    labels_per_prompt = 4
    records_field = "triples"
    record = Triple
    wire_schema = RESchema
    schema_help = '["founded by"], {"founded by": "description"} or [{"relation", "head_type", "tail_type"}]'
    summary = "Relation triples (head, relation, tail) of the schema's relations."

    def labels(self, raw: Any) -> list[RelationType]:
        return relation_types(raw)

    def prompt_schema(self, group: list[RelationType]) -> Any:
        return named(group)

    def json_schema(self, group: list[RelationType]) -> dict[str, Any]:
        return re_schema(tuple(label.name for label in group))

    def answer_grammar(self, group: list[RelationType]) -> str:
        return re_grammar(tuple(label.name for label in group))

    def parse(self, text: str, group: list[RelationType]) -> Parsed:
        return parse_re(text, LabelSet(label.name for label in group))

    def build(self, records: list[Any], group: list[RelationType], ground: Grounder) -> list[Triple]:
        types = {label.name: label for label in group}
        out = []
        for h, r, t in records:
            head = ground.span(h, Entity, type=types[r].head_type)
            tail = ground.span(t, Entity, type=types[r].tail_type)
            if span_key(head) == span_key(tail) or head.text.strip().lower() == tail.text.strip().lower():
                ground.self_relations += 1  # "Apple" founded by "Apple" is no relation
                continue
            out.append(Triple(head=head, relation=r, tail=tail))
        return out

    def key(self, record: Triple) -> tuple:
        return (record.relation, *span_key(record.head), *span_key(record.tail))

    def grounded_only(self, record: Triple) -> Triple | None:
        return record if record.head.grounded and record.tail.grounded else None

    def gold_schema(self, docs: list[GoldDoc]) -> list[str]:
        return sorted({r for d in docs for _, r, _ in d.relations})

    def gold_label_names(self, doc: GoldDoc) -> list[str]:
        return sorted({r for _, r, _ in doc.relations})

    def gold_tuples(self, doc: GoldDoc) -> dict[str, list[tuple]]:
        return {"triples": [(r, h, t) for h, r, t in doc.relations]}

    def predicted_tuples(self, response: dict[str, Any]) -> dict[str, list[tuple]]:
        return {"triples": [(t["relation"], t["head"]["text"], t["tail"]["text"]) for t in response["triples"]]}

    def gold_answer(self, doc: GoldDoc, group: list[RelationType]) -> dict[str, Any]:
        return {label.name: [{"subject": h, "object": t} for h, t in bounded(
                    [(gold_span(doc.text, h), gold_span(doc.text, t)) for h, r, t in doc.relations
                     if r == label.name])]
                for label in group}
