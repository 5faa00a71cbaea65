"""The three tasks (NER, RE, EE): how each names its labels, constrains, parses and
builds typed records. Registered in ``TASKS`` by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from . import constraints, parsing, schema
from .chunking import Chunk
from .grounding import locate
from .records import Argument, Entity, Event, Span, Triple

L = TypeVar("L", bound=BaseModel)


class Grounder:
    """Locates spans of one chunk in the full text and counts the ones it cannot find."""

    def __init__(self, text: str, chunk: Chunk) -> None:
        self.text, self.chunk = text, chunk
        self.ungrounded = 0

    def span(self, value: str, cls: type[Span] = Span, **fields: Any) -> Span:
        where = locate(value, self.chunk.text)
        if where is not None:
            start, end = where[0] + self.chunk.offset, where[1] + self.chunk.offset
        else:
            where = locate(value, self.text)  # the model may quote a neighbouring chunk
            start, end = where if where else (None, None)
        if where is None:
            self.ungrounded += 1
            return cls(text=value, grounded=False, **fields)
        return cls(text=self.text[start:end], start=start, end=end, grounded=True, **fields)


@dataclass(frozen=True)
class Task(Generic[L]):
    name: str
    labels_per_prompt: int  # OneKE's split sizes

    def labels(self, raw: Any) -> list[L]:
        raise NotImplementedError

    def prompt_schema(self, group: list[L]) -> Any:
        raise NotImplementedError

    def labels_text(self, group: list[L]) -> str:
        return ", ".join(label.name for label in group)

    def json_schema(self, group: list[L]) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, text: str, group: list[L]) -> parsing.Parsed:
        raise NotImplementedError

    def build(self, records: list[Any], group: list[L], ground: Grounder) -> list[BaseModel]:
        raise NotImplementedError

    def key(self, record: Any) -> tuple:
        raise NotImplementedError

    def grounded_only(self, record: Any) -> Any | None:
        """The record without ungrounded spans, or None if it cannot stand without them."""
        raise NotImplementedError


def _named(group: list[Any]) -> Any:
    """Label names, or ``{name: description}`` when any label has a description."""
    if any(label.description for label in group):
        return {label.name: label.description for label in group}
    return [label.name for label in group]


def _span_key(span: Span | None) -> tuple:
    if span is None:
        return (None,)
    return (span.start, span.end) if span.grounded else (span.text.lower(),)


class NER(Task[schema.EntityType]):
    def labels(self, raw: Any) -> list[schema.EntityType]:
        return schema.entity_types(raw)

    def prompt_schema(self, group):
        return _named(group)

    def json_schema(self, group):
        return constraints.ner_schema(tuple(label.name for label in group))

    def parse(self, text, group):
        return parsing.parse_ner(text, parsing.LabelSet(label.name for label in group))

    def build(self, records, group, ground):
        return [ground.span(text, Entity, type=label) for text, label in records]

    def key(self, record: Entity) -> tuple:
        return (record.type, *_span_key(record))

    def grounded_only(self, record: Entity) -> Entity | None:
        return record if record.grounded else None


class RE(Task[schema.RelationType]):
    def labels(self, raw):
        return schema.relation_types(raw)

    def prompt_schema(self, group):
        return _named(group)

    def json_schema(self, group):
        return constraints.re_schema(tuple(label.name for label in group))

    def parse(self, text, group):
        return parsing.parse_re(text, parsing.LabelSet(label.name for label in group))

    def build(self, records, group, ground):
        types = {label.name: label for label in group}
        return [
            Triple(
                head=ground.span(h, Entity, type=types[r].head_type),
                relation=r,
                tail=ground.span(t, Entity, type=types[r].tail_type),
            )
            for h, r, t in records
        ]

    def key(self, record: Triple) -> tuple:
        return (record.relation, *_span_key(record.head), *_span_key(record.tail))

    def grounded_only(self, record: Triple) -> Triple | None:
        return record if record.head.grounded and record.tail.grounded else None


class EE(Task[schema.EventType]):
    def labels(self, raw):
        return schema.event_types(raw)

    def prompt_schema(self, group):
        return [{"event_type": e.name, "trigger": True, "arguments": e.roles} for e in group]

    def labels_text(self, group):
        return "; ".join(f"{e.name} ({', '.join(e.roles)})" for e in group)

    def json_schema(self, group):
        return constraints.ee_schema(tuple((e.name, tuple(e.roles)) for e in group))

    def parse(self, text, group):
        return parsing.parse_ee(text, {e.name: e.roles for e in group})

    def build(self, records, group, ground):
        return [
            Event(
                type=etype,
                trigger=ground.span(trigger) if trigger else None,
                arguments=[ground.span(value, Argument, role=role) for role, value in args],
            )
            for etype, trigger, args in records
        ]

    def key(self, record: Event) -> tuple:
        args = sorted(str((a.role, *_span_key(a))) for a in record.arguments)
        return (record.type, *_span_key(record.trigger), tuple(args))

    def grounded_only(self, record: Event) -> Event | None:
        if record.trigger is not None and not record.trigger.grounded:
            return None
        arguments = [a for a in record.arguments if a.grounded]
        return record.model_copy(update={"arguments": arguments})


TASKS: dict[str, Task] = {"ner": NER("ner", 6), "re": RE("re", 4), "ee": EE("ee", 4)}
