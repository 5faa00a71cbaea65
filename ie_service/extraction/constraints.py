"""Building blocks of the JSON schemas enforced through vLLM structured outputs.

Every task answers in one of two shapes, a property of the model (``answer_shape`` in the
model folder's ``ie_service.json`` or the adapter's manifest, see ``models.sidecar``):

* ``full`` (OneKE's, the default): an object keyed by every label of the prompt's group, in
  order, each holding a bounded list (``[]`` for none);
* ``compact``: only the labels the text holds, still in the group's order, each list
  non-empty; an absent key means none and ``{}`` is the answer for nothing. A model trained
  on it writes no tokens for empty labels.

``tasks/*.py`` build theirs from these. Lists and strings are bounded so that a small model
cannot loop until max_tokens; tasks cache their schemas (``lru_cache``) so that vLLM
compiles each grammar once.
"""

from __future__ import annotations

from typing import Any, Literal

AnswerShape = Literal["full", "compact"]
FULL: AnswerShape = "full"
COMPACT: AnswerShape = "compact"
ANSWER_SHAPES: tuple[str, ...] = (FULL, COMPACT)

MAX_ITEMS = 12
MAX_SPAN_CHARS = 120
# An event record repeats every role, so a loop costs far more tokens than an entity loop:
# one sentence rarely holds more than a few events of one type, and triggers are short words.
MAX_EVENTS = 3
MAX_TRIGGER_CHARS = 16
MAX_ARGUMENT_CHARS = 60
MAX_ARGUMENT_VALUES = 3  # a role may hold several spans ("如果论元存在多值请返回列表")

SPAN = {"type": "string", "minLength": 1, "maxLength": MAX_SPAN_CHARS}


def strict_object(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def list_of(item: dict[str, Any], max_items: int = MAX_ITEMS, min_items: int = 0) -> dict[str, Any]:
    out = {"type": "array", "items": item, "maxItems": max_items}
    return {**out, "minItems": min_items} if min_items else out


def answer_object(properties: dict[str, Any], shape: str = FULL) -> dict[str, Any]:
    """The answer's top-level object: ``full`` requires every key; ``compact`` makes every
    key optional (xgrammar keeps the properties' order, so keys still come in this order)."""
    check_shape(shape)
    if shape == FULL:
        return strict_object(properties)
    return {"type": "object", "properties": properties, "required": [], "additionalProperties": False}


def answer_list(item: dict[str, Any], shape: str = FULL, max_items: int = MAX_ITEMS) -> dict[str, Any]:
    """A label's list: may be empty in the ``full`` shape, never in the ``compact`` one."""
    return list_of(item, max_items, 1 if shape == COMPACT else 0)


def check_shape(shape: str) -> None:
    if shape not in ANSWER_SHAPES:
        raise ValueError(f"unknown answer shape {shape!r}; one of {list(ANSWER_SHAPES)}")


def compacted(answer: dict[str, Any]) -> dict[str, Any]:
    """A ``full`` answer in the ``compact`` shape: keys with an empty list left out."""
    return {k: v for k, v in answer.items() if v}

