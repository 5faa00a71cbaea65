"""RE: relation triples, as ``{"founded by": [{"subject": "...", "object": "..."}]}``.

A relation whose schema gives both ends' types (``head_type`` / ``tail_type``, different
words) is asked and answered by them: the prompt describes it as ``"organization founded by
person"`` and its pairs are ``{"organization": "...", "person": "..."}`` (head first), so the
grammar makes the model say which span is the organization, and the head is always the
organization's span (a typed relation cannot come back with its ends swapped)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...gold import GoldDoc
from ..constraints import FULL, MAX_ITEMS, SPAN, answer_list, answer_object, compacted, strict_object
from ..grounded_grammar import SPAN_RULE, answer_object_rules, bounded_list, strict_object_rule
from ..lenient_json import find_json
from ..parsing import LABEL_LINE, SEP, TUPLE, LabelSet, Parsed, first, known, value_text
from ..records import Entity
from ..schema import SchemaError, check_nonempty, check_unique, clean_name
from .base import Grounder, Task, bounded, gold_span, named, span_key
from ..confidence import lowest, span_confidence  # after .base: it imports base


class RelationType(BaseModel):
    name: str
    description: str = ""
    head_type: str | None = None
    tail_type: str | None = None

    @property
    def typed(self) -> bool:
        """Both ends typed, by different words: the pair's keys are the types."""
        return bool(self.head_type and self.tail_type
                    and self.head_type.strip().lower() != self.tail_type.strip().lower())

    @property
    def keys(self) -> tuple[str, str]:
        """The pair's keys, head first: the ends' types, else ``subject`` / ``object``."""
        return (self.head_type, self.tail_type) if self.typed else PAIR_KEYS  # type: ignore[return-value]

    @property
    def prompt_description(self) -> str:
        """The description the prompt shows: the typed reading first ("organization founded
        by person"), then the schema's own description."""
        if not self.typed:
            return self.description
        reading = f"{self.head_type} {self.name} {self.tail_type}"
        return f"{reading}; {self.description}" if self.description else reading


PAIR_KEYS = ("subject", "object")


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
    confidence: float | None = Field(None, ge=0.0, le=1.0,
                                     description="the lower of the head's and the tail's confidence")


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


Relations = tuple[tuple[str, tuple[str, str]], ...]  # (name, pair keys) per relation


def _relations(group: list[RelationType]) -> Relations:
    return tuple((label.name, label.keys) for label in group)


@lru_cache(maxsize=512)
def re_schema(relations: Relations | tuple[str, ...], shape: str = FULL) -> dict[str, Any]:
    """``{"founded by": [{"subject": "...", "object": "..."}]}``; a typed relation's pairs are
    keyed by its ends' types. ``relations``: (name, keys) pairs, or names (untyped)."""
    props = {}
    for rel in relations:
        name, (head, tail) = (rel, PAIR_KEYS) if isinstance(rel, str) else rel
        props[name] = answer_list(strict_object({head: SPAN, tail: SPAN}), shape)
    return answer_object(props, shape)


@lru_cache(maxsize=512)
def re_grammar(relations: Relations | tuple[str, ...], shape: str = FULL) -> str:
    """``re_schema``'s shape with grounded heads and tails."""
    minimum = 0 if shape == FULL else 1
    fields, rules, pair_rules = [], [], {}
    for rel in relations:
        name, keys = (rel, PAIR_KEYS) if isinstance(rel, str) else rel
        if keys not in pair_rules:
            rule = "pair" if keys == PAIR_KEYS else f"pair{len(pair_rules) + 1}"
            pair_rules[keys] = rule
            rules.append(f"{rule} ::= " + strict_object_rule([(keys[0], SPAN_RULE), (keys[1], SPAN_RULE)]))
        fields.append((name, bounded_list(pair_rules[keys], MAX_ITEMS, min_items=minimum)))
    return "\n".join([*answer_object_rules("root", fields, shape), *rules])


_HEAD = ("subject", "head", "head_entity", "头实体", "主体")
_TAIL = ("object", "tail", "tail_entity", "尾实体", "客体")
_REL = ("relation", "predicate", "relation_type", "关系")


def _pairs(value: Any, keys: tuple[str, str] = PAIR_KEYS) -> list[tuple[str, str]]:
    """``[{"subject","object"}]`` (or a typed relation's ``[{head_type, tail_type}]``),
    ``{"subject","object"}`` or ``[[h, t]]`` → pairs."""
    items = value if isinstance(value, list) else [value]
    out = []
    if len(items) == 2 and all(isinstance(v, str) for v in items):
        items = [items]
    head_keys, tail_keys = (keys[0], *_HEAD), (keys[1], *_TAIL)
    for item in items:
        if isinstance(item, dict):
            h, t = value_text(first(item, head_keys)), value_text(first(item, tail_keys))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            h, t = value_text(item[0]), value_text(item[1])
        else:
            continue
        if h and t:
            out.append((h, t))
    return out


def parse_re(text: str, relations: LabelSet, keys: dict[str, tuple[str, str]] | None = None) -> Parsed:
    """→ records ``(head, relation, tail)``; ``keys``: a typed relation's pair keys (head, tail)."""
    out = Parsed()
    data = find_json(text)
    if isinstance(data, dict) and not any(k in data for k in _REL):
        for key, value in data.items():
            rel = relations.match(key) if isinstance(key, str) else None
            pairs = _pairs(value, (keys or {}).get(rel, PAIR_KEYS))
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
        """Names, or ``{name: description}`` when any relation is described or typed (a typed
        one reads "organization founded by person", naming its answer's keys)."""
        if any(label.typed for label in group):
            return {label.name: label.prompt_description for label in group}
        return named(group)

    def json_schema(self, group: list[RelationType], shape: str = FULL) -> dict[str, Any]:
        return re_schema(_relations(group), shape)

    def answer_grammar(self, group: list[RelationType], shape: str = FULL) -> str:
        return re_grammar(_relations(group), shape)

    def parse(self, text: str, group: list[RelationType]) -> Parsed:
        return parse_re(text, LabelSet(label.name for label in group),
                        {label.name: label.keys for label in group if label.typed})

    def build(self, records: list[Any], group: list[RelationType], ground: Grounder) -> list[Triple]:
        types = {label.name: label for label in group}
        out = []
        for h, r, t in records:
            head = ground.span(h, Entity, type=types[r].head_type, confidence=span_confidence(ground, h))
            tail = ground.span(t, Entity, type=types[r].tail_type, confidence=span_confidence(ground, t))
            if span_key(head) == span_key(tail) or head.text.strip().lower() == tail.text.strip().lower():
                ground.self_relations += 1  # "Apple" founded by "Apple" is no relation
                continue
            out.append(Triple(head=head, relation=r, tail=tail,
                              confidence=lowest([head.confidence, tail.confidence])))
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

    def gold_answer(self, doc: GoldDoc, group: list[RelationType], shape: str = FULL) -> dict[str, Any]:
        out = {label.name: [dict(zip(label.keys, pair)) for pair in bounded(
                   [(gold_span(doc.text, h), gold_span(doc.text, t)) for h, r, t in doc.relations
                    if r == label.name])]
               for label in group}
        return out if shape == FULL else compacted(out)
