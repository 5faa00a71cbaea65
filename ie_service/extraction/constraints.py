"""JSON schemas enforced through vLLM structured outputs, one per (task, label group).

The answer shape is OneKE's: an object keyed by every label of the group, each holding a
list. Lists and strings are bounded so that a small model cannot loop until max_tokens.
Schemas are cached and serialised deterministically, so vLLM compiles each grammar once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

MAX_ITEMS = 12
MAX_SPAN_CHARS = 120
# An event record repeats every role, so a loop costs far more tokens than an entity loop:
# one sentence rarely holds more than a few events of one type, and triggers are short words.
MAX_EVENTS = 3
MAX_TRIGGER_CHARS = 16
MAX_ARGUMENT_CHARS = 60

_SPAN = {"type": "string", "minLength": 1, "maxLength": MAX_SPAN_CHARS}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _list_of(item: dict[str, Any], max_items: int = MAX_ITEMS) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": max_items}


@lru_cache(maxsize=512)
def ner_schema(labels: tuple[str, ...]) -> dict[str, Any]:
    """``{"person": ["Obama", ...], "location": [...]}``"""
    return _object({label: _list_of(_SPAN) for label in labels})


@lru_cache(maxsize=512)
def re_schema(relations: tuple[str, ...]) -> dict[str, Any]:
    """``{"founded by": [{"subject": "...", "object": "..."}]}``"""
    pair = _object({"subject": _SPAN, "object": _SPAN})
    return _object({rel: _list_of(pair) for rel in relations})


@lru_cache(maxsize=512)
def ee_schema(events: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, Any]:
    """``{"质押": [{"trigger": "...", "arguments": {"质押方": "...", ...}}]}``; a missing
    argument is the empty string (OneKE's ``NAN`` is also accepted by the parser)."""
    trigger = {"type": "string", "minLength": 1, "maxLength": MAX_TRIGGER_CHARS}
    argument = {"type": "string", "maxLength": MAX_ARGUMENT_CHARS}
    props = {}
    for name, roles in events:
        arguments = _object({role: argument for role in roles})
        props[name] = _list_of(_object({"trigger": trigger, "arguments": arguments}), MAX_EVENTS)
    return _object(props)
