"""Building blocks of the JSON schemas enforced through vLLM structured outputs.

Every task answers in OneKE's shape: an object keyed by every label of the prompt's group,
each holding a bounded list (``tasks/*.py`` build theirs from these). Lists and strings are
bounded so that a small model cannot loop until max_tokens; tasks cache their schemas
(``lru_cache``) so that vLLM compiles each grammar once.
"""

from __future__ import annotations

from typing import Any

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


def list_of(item: dict[str, Any], max_items: int = MAX_ITEMS) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": max_items}

