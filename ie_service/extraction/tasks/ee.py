"""EE: events with trigger and role-labelled arguments, as
``{"质押": [{"trigger": "...", "arguments": {"质押方": "...", ...}}]}``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...gold import GoldDoc, GoldEvent
from ..constraints import (
    FULL, MAX_ARGUMENT_CHARS, MAX_ARGUMENT_VALUES, MAX_EVENTS, MAX_TRIGGER_CHARS, answer_list, answer_object,
    compacted, strict_object,
)
from ..grounded_grammar import SPAN_RULE, answer_object_rules, bounded_list, strict_object_rule
from ..lenient_json import find_json
from ..parsing import LabelSet, Parsed, first, known, span_values, value_text
from ..records import Span
from ..schema import SchemaError, check_nonempty, check_unique, clean_name
from .base import Grounder, NotExpressible, Task, TriggersOnly, bounded, gold_span, span_key
from ..confidence import lowest, span_confidence  # after .base: it imports base


class EventType(BaseModel):
    name: str
    roles: list[str] = Field(default_factory=list)
    description: str = ""


class EventSpec(BaseModel):
    """An event type in a request's schema, with its argument roles."""

    model_config = ConfigDict(extra="forbid")
    event_type: str
    arguments: list[str] = Field(default_factory=list)
    description: str = ""


EESchema = dict[str, list[str]] | list[EventSpec]


class Argument(Span):
    role: str


class Event(BaseModel):
    type: str
    trigger: Span | None = None
    arguments: list[Argument] = Field(default_factory=list)
    confidence: float | None = Field(None, ge=0.0, le=1.0, description=(
        "the trigger's confidence (without a trigger: the lowest of its arguments')"))


def event_types(schema: Any) -> list[EventType]:
    """``{"质押": ["质押方", "质押物"]}`` or
    ``[{"event_type": "Attack", "arguments": ["attacker", "target"]}]``."""
    check_nonempty(schema, "event type")
    out: list[EventType] = []
    if isinstance(schema, dict):
        for k, roles in schema.items():
            if not isinstance(roles, list):
                raise SchemaError(f"roles of event type {k!r} must be a list of strings")
            out.append(EventType(name=clean_name(k, "event type"), roles=[clean_name(r, "role") for r in roles]))
    elif isinstance(schema, list):
        for item in schema:
            if isinstance(item, dict):
                name = item.get("event_type", item.get("name"))
                roles = item.get("arguments", item.get("roles", []))
                if not isinstance(roles, list):
                    raise SchemaError(f"arguments of event type {name!r} must be a list")
                out.append(EventType(name=clean_name(name, "event type"),
                                     roles=[clean_name(r, "role") for r in roles],
                                     description=str(item.get("description") or "")))
            else:
                out.append(EventType(name=clean_name(item, "event type")))
    else:
        raise SchemaError("EE schema must be {event_type: [roles]} or a list of event types")
    check_unique([e.name for e in out], "event type")
    for e in out:
        check_unique(e.roles, f"role of {e.name}")
    return out


@lru_cache(maxsize=512)
def ee_schema(events: tuple[tuple[str, tuple[str, ...]], ...], shape: str = FULL) -> dict[str, Any]:
    """``{"质押": [{"trigger": "...", "arguments": {"质押方": "...", ...}}]}``; a missing
    argument is the empty string (OneKE's ``NAN`` is also accepted by the parser), a role
    with several values is a list of strings. Compact: a missing argument's role is left
    out (and so is an event type without events)."""
    trigger = {"type": "string", "minLength": 1, "maxLength": MAX_TRIGGER_CHARS}
    one = {"type": "string", "maxLength": MAX_ARGUMENT_CHARS}
    several = {"type": "array", "items": {**one, "minLength": 1}, "minItems": 2,
               "maxItems": MAX_ARGUMENT_VALUES}
    argument = {"anyOf": [one if shape == FULL else {**one, "minLength": 1}, several]}
    props = {}
    for name, roles in events:
        arguments = answer_object({role: argument for role in roles}, shape)
        props[name] = answer_list(strict_object({"trigger": trigger, "arguments": arguments}), shape, MAX_EVENTS)
    return answer_object(props, shape)


@lru_cache(maxsize=512)
def ee_grammar(events: tuple[tuple[str, tuple[str, ...]], ...], shape: str = FULL) -> str:
    """``ee_schema``'s shape with a grounded trigger and arguments: a role is ``""`` (full
    shape only), one span, or a list of 2..MAX_ARGUMENT_VALUES spans."""
    several = bounded_list(SPAN_RULE, MAX_ARGUMENT_VALUES, min_items=2)
    empty = '"\\"\\"" | ' if shape == FULL else ""
    lines = [f'argument ::= {empty}{SPAN_RULE} | {several}']
    props = []
    for i, (name, roles) in enumerate(events):
        lines += answer_object_rules(f"arguments{i}", [(role, "argument") for role in roles], shape)
        lines.append(f"event{i} ::= " + strict_object_rule([("trigger", SPAN_RULE), ("arguments", f"arguments{i}")]))
        props.append((name, bounded_list(f"event{i}", MAX_EVENTS, min_items=0 if shape == FULL else 1)))
    return "\n".join([*answer_object_rules("root", props, shape), *lines])


EventRecord = tuple[str, str | None, list[tuple[str, str]]]


def _arguments(value: Any) -> list[tuple[str, Any]]:
    """``{role: value}`` or ``[{"role": r, "argument": v}]`` → (role, value) pairs."""
    if isinstance(value, dict):
        return list(value.items())
    out = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                role = first(item, ("role", "argument_role", "角色", "论元角色"))
                out.append((role, first(item, ("argument", "text", "value", "name", "论元"))))
    return out


def _event(out: Parsed, etype: str, roles: LabelSet, item: Any) -> None:
    if not isinstance(item, dict):
        return
    trigger = value_text(first(item, ("trigger", "触发词", "event_trigger")))
    args: list[tuple[str, str]] = []
    for raw_role, value in _arguments(first(item, ("arguments", "args", "论元"))):
        values = span_values(value)
        role = known(out, roles, raw_role, values)
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
            etype = known(out, types, key, value)
            if etype is not None:
                for item in value if isinstance(value, list) else [value]:
                    _event(out, etype, role_sets[etype], item)
        return out
    if isinstance(data, (dict, list)):
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict):
                continue
            raw = first(item, ("event_type", "type", "事件类型"))
            etype = known(out, types, raw)
            if etype is not None:
                _event(out, etype, role_sets[etype], item)
        return out
    out.ok = not text.strip()
    return out


def _gold_event(text: str, event: GoldEvent, roles: list[str], shape: str = FULL) -> dict[str, Any]:
    """One event of the answer: every role, "" when it has no value (compact: left out), a
    list for several."""
    if not event.trigger:
        raise NotExpressible("event without a trigger")
    arguments: dict[str, Any] = {}
    for role in roles:
        values = bounded([gold_span(text, v, MAX_ARGUMENT_CHARS) for r, v in event.arguments if r == role],
                         MAX_ARGUMENT_VALUES, "values of one role")
        arguments[role] = values[0] if len(values) == 1 else values or ""
    if shape != FULL:
        arguments = compacted(arguments)
    return {"trigger": gold_span(text, event.trigger, MAX_TRIGGER_CHARS), "arguments": arguments}


class EE(Task[EventType], TriggersOnly):
    name = "ee"
    labels_per_prompt = 4
    records_field = "events"
    record = Event
    wire_schema = EESchema
    schema_help = '{"event type": ["role", ...]}'
    summary = "Events of the schema's types, with trigger and role-labelled arguments."

    def labels(self, raw: Any) -> list[EventType]:
        return event_types(raw)

    def prompt_schema(self, group: list[EventType]) -> Any:
        return [{"event_type": e.name, "trigger": True, "arguments": e.roles} for e in group]

    def labels_text(self, group: list[EventType]) -> str:
        return "; ".join(f"{e.name} ({', '.join(e.roles)})" for e in group)

    def json_schema(self, group: list[EventType], shape: str = FULL) -> dict[str, Any]:
        return ee_schema(tuple((e.name, tuple(e.roles)) for e in group), shape)

    def answer_grammar(self, group: list[EventType], shape: str = FULL) -> str:
        return ee_grammar(tuple((e.name, tuple(e.roles)) for e in group), shape)

    def parse(self, text: str, group: list[EventType]) -> Parsed:
        return parse_ee(text, {e.name: e.roles for e in group})

    def build(self, records: list[EventRecord], group: list[EventType], ground: Grounder) -> list[Event]:
        out = []
        for etype, trigger, args in records:
            span = ground.span(trigger, confidence=span_confidence(ground, trigger)) if trigger else None
            arguments = [ground.span(value, Argument, role=role, confidence=span_confidence(ground, value))
                         for role, value in args]
            confidence = span.confidence if span is not None else lowest(a.confidence for a in arguments)
            out.append(Event(type=etype, trigger=span, arguments=arguments, confidence=confidence))
        return out

    def key(self, record: Event) -> tuple:
        args = sorted(str((a.role, *span_key(a))) for a in record.arguments)
        return (record.type, *span_key(record.trigger), tuple(args))

    def grounded_only(self, record: Event) -> Event | None:
        if record.trigger is not None and not record.trigger.grounded:
            return None
        arguments = [a for a in record.arguments if a.grounded]
        return record.model_copy(update={"arguments": arguments})

    def gold_schema(self, docs: list[GoldDoc]) -> dict[str, list[str]]:
        roles: dict[str, set[str]] = {}
        for d in docs:
            for e in d.events:
                roles.setdefault(e.type, set()).update(r for r, _ in e.arguments)
        return {k: sorted(v) for k, v in sorted(roles.items())}

    def gold_label_names(self, doc: GoldDoc) -> list[str]:
        return sorted({e.type for e in doc.events})

    def gold_tuples(self, doc: GoldDoc) -> dict[str, list[tuple]]:
        return {"triggers": [(e.type, e.trigger) for e in doc.events if e.trigger],
                "arguments": [(f"{e.type}:{role}", text) for e in doc.events for role, text in e.arguments]}

    def predicted_tuples(self, response: dict[str, Any]) -> dict[str, list[tuple]]:
        events = response["events"]
        return {"triggers": [(e["type"], e["trigger"]["text"]) for e in events if e.get("trigger")],
                "arguments": [(f"{e['type']}:{a['role']}", a["text"]) for e in events for a in e["arguments"]]}

    def gold_answer(self, doc: GoldDoc, group: list[EventType], shape: str = FULL) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label in group:
            events = [_gold_event(doc.text, e, label.roles, shape) for e in doc.events if e.type == label.name]
            if len(events) > MAX_EVENTS:
                raise NotExpressible(f"more than {MAX_EVENTS} events of one type")
            out[label.name] = events
        return out if shape == FULL else compacted(out)

    def triggers_only(self, schema: Any, examples: list[dict]) -> tuple[dict[str, list], list[dict]]:
        """Every event record repeats all of its roles, so a small model that fills the
        grammar spends most of its token budget on arguments; trigger detection does not
        need them."""
        types = list(schema) if isinstance(schema, (dict, list)) else []
        stripped = []
        for e in examples:
            out = e["output"]
            if isinstance(out, dict):
                out = {t: [{"trigger": ev.get("trigger", ""), "arguments": {}} for ev in evs]
                       for t, evs in out.items()}
            stripped.append({**e, "output": out})
        return {t: [] for t in types}, stripped
