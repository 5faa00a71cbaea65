"""Request schemas (entity types, relation types, event types with roles), normalised.

Users may write a schema as a list of labels, a ``{label: description}`` mapping, or (RE,
EE) richer objects; each task turns it into a list of label objects.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SchemaError(ValueError):
    """The request's schema cannot be understood (answered with a 422)."""


class EntityType(BaseModel):
    name: str
    description: str = ""


class RelationType(BaseModel):
    name: str
    description: str = ""
    head_type: str | None = None
    tail_type: str | None = None


class EventType(BaseModel):
    name: str
    roles: list[str] = Field(default_factory=list)
    description: str = ""


def _clean(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{what} names must be non-empty strings, got {name!r}")
    return name.strip()


def _unique(names: list[str], what: str) -> None:
    seen = set()
    for n in names:
        if n.lower() in seen:
            raise SchemaError(f"duplicate {what} {n!r} in schema")
        seen.add(n.lower())


def _nonempty(schema: Any, what: str) -> None:
    if not schema:
        raise SchemaError(f"schema must name at least one {what}")


def entity_types(schema: Any) -> list[EntityType]:
    """``["person", ...]`` or ``{"person": "a human being", ...}``."""
    _nonempty(schema, "entity type")
    if isinstance(schema, dict):
        out = [EntityType(name=_clean(k, "entity type"), description=str(v or "")) for k, v in schema.items()]
    elif isinstance(schema, list):
        out = [EntityType(name=_clean(k, "entity type")) for k in schema]
    else:
        raise SchemaError("NER schema must be a list of entity types or a {type: description} object")
    _unique([e.name for e in out], "entity type")
    return out


def relation_types(schema: Any) -> list[RelationType]:
    """``["founded by"]``, ``{"founded by": "description"}``, or
    ``[{"relation": "founded by", "head_type": "organization", "tail_type": "person"}]``."""
    _nonempty(schema, "relation type")
    out: list[RelationType] = []
    if isinstance(schema, dict):
        out = [RelationType(name=_clean(k, "relation"), description=str(v or "")) for k, v in schema.items()]
    elif isinstance(schema, list):
        for item in schema:
            if isinstance(item, dict):
                name = item.get("relation", item.get("name"))
                out.append(RelationType(
                    name=_clean(name, "relation"),
                    description=str(item.get("description") or ""),
                    head_type=item.get("head_type") or None,
                    tail_type=item.get("tail_type") or None,
                ))
            else:
                out.append(RelationType(name=_clean(item, "relation")))
    else:
        raise SchemaError("RE schema must be a list of relations or a {relation: description} object")
    _unique([r.name for r in out], "relation")
    return out


def event_types(schema: Any) -> list[EventType]:
    """``{"质押": ["质押方", "质押物"]}`` or
    ``[{"event_type": "Attack", "arguments": ["attacker", "target"]}]``."""
    _nonempty(schema, "event type")
    out: list[EventType] = []
    if isinstance(schema, dict):
        for k, roles in schema.items():
            if not isinstance(roles, list):
                raise SchemaError(f"roles of event type {k!r} must be a list of strings")
            out.append(EventType(name=_clean(k, "event type"), roles=[_clean(r, "role") for r in roles]))
    elif isinstance(schema, list):
        for item in schema:
            if isinstance(item, dict):
                name = item.get("event_type", item.get("name"))
                roles = item.get("arguments", item.get("roles", []))
                if not isinstance(roles, list):
                    raise SchemaError(f"arguments of event type {name!r} must be a list")
                out.append(EventType(name=_clean(name, "event type"),
                                     roles=[_clean(r, "role") for r in roles],
                                     description=str(item.get("description") or "")))
            else:
                out.append(EventType(name=_clean(item, "event type")))
    else:
        raise SchemaError("EE schema must be {event_type: [roles]} or a list of event types")
    _unique([e.name for e in out], "event type")
    for e in out:
        _unique(e.roles, f"role of {e.name}")
    return out
